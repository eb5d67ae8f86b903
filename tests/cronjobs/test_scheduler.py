"""`crontab work`: due minutes and catch-up with an injected clock, claims, bounded concurrency and
its queue, jitter, shutdown, configuration; real processes in the slow tier."""

import io
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cronjobs.models import JobRun
from cronjobs.registry import parse_cronjobs
from cronjobs.scheduler import Scheduler, due_slots
from tests.clock import travel
from tests.cronjobs.conftest import SUBPROCESS_SETTINGS, clean_env, write_config
from tests.cronjobs.procs import WAIT, Proc, start_work
from tests.factories import JobRunFactory

JOBS = "tests.cronjobs.jobs"


def jobs(*entries):
    registry = parse_cronjobs(list(entries))
    assert not registry.all_problems()
    return registry.jobs


class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)


class Runners:
    """Stands in for the forked runner processes (the real ones are in the slow tier): records what was
    launched; each run is recorded succeeded at once, and its process ends when the test says so."""

    _pids = iter(range(90000, 99999))

    def __init__(self):
        self.launched: list[tuple[str, JobRun, int]] = []
        self.ended: list[tuple[int, int]] = []

    def launch(self, job, record):
        pid = next(self._pids)
        self.launched.append((job.name, record, pid))
        JobRun.objects.filter(pk=record.pk).update(status="succeeded", finished_at=record.started_at)
        return pid

    def collect(self, pids):
        ended, self.ended = [(pid, code) for pid, code in self.ended if pid in pids], []
        return ended

    def finish(self, index: int, code: int = 0):
        self.ended.append((self.launched[index][2], code))

    @property
    def names(self):
        return [(name, record.scheduled_for.astimezone(UTC).strftime("%H:%M")) for name, record, _ in self.launched]


def scheduler(entries, start, **kwargs):
    clock, runners = Clock(start), Runners()
    sched = Scheduler(
        jobs=jobs(*entries), out=io.StringIO(), clock=clock, launch=runners.launch, collect=runners.collect, **kwargs
    )
    return sched, clock, runners


def fired(pairs):
    return [(job.name, slot.astimezone(UTC).strftime("%H:%M")) for job, slot in pairs]


EVERY_MINUTE = ("* * * * *", f"{JOBS}.succeed")
EVERY_FIVE = ("*/5 * * * *", f"{JOBS}.add", [1, 2])
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def now_is_the_fake_clock():
    # The claims compare with "now" too: the fake clock's moment stands for the database's.
    with travel(datetime(2025, 5, 5, 12, 0, tzinfo=UTC), tick=False) as traveller:
        yield traveller


def test_starting_fires_each_job_s_latest_minute_within_catch_up_then_each_next_minute(now_is_the_fake_clock):
    start = datetime(2025, 5, 5, 12, 3, 40, tzinfo=UTC)
    now_is_the_fake_clock.move_to(start)
    sched, clock, runners = scheduler([EVERY_MINUTE, EVERY_FIVE], start)
    # A start is a wake-up: 12:03 (this minute) is fired; 12:00 (the five-minute job's, 220 s ago) is
    # already past its start limit (2.5 minutes, half its interval): not fired, nor recorded (a job that
    # has run before gets it recorded by the gap sweeper; this one never ran: a fresh install's jobs).
    assert fired(sched.tick()) == [("succeed", "12:03")]
    assert runners.names == [("succeed", "12:03")]
    assert not JobRun.objects.filter(job_name="add").exists()
    clock.advance(seconds=20, microseconds=10_000)  # 12:04:00.01
    now_is_the_fake_clock.move_to(clock.now)
    assert fired(sched.tick()) == [("succeed", "12:04")]
    assert sched.tick() == []  # same minute: once
    clock.advance(minutes=1)  # 12:05
    now_is_the_fake_clock.move_to(clock.now)
    assert fired(sched.tick()) == [("succeed", "12:05"), ("add", "12:05")]
    assert runners.names[-2:] == [("succeed", "12:05"), ("add", "12:05")]
    record = runners.launched[-1][1]
    assert (record.status, record.trigger, record.pid) == ("running", "work", os.getpid())


def test_a_minute_another_process_claimed_is_not_launched(now_is_the_fake_clock):
    start = datetime(2025, 5, 5, 12, 0, 10, tzinfo=UTC)
    now_is_the_fake_clock.move_to(start)
    JobRunFactory(job_name="succeed", scheduled_for=start.replace(second=0), trigger="crontab")
    sched, clock, runners = scheduler([EVERY_MINUTE], start)
    assert fired(sched.tick()) == [("succeed", "12:00")]
    assert runners.launched == []
    assert "fire succeed [2025-05-05 12:00]: already claimed by run #" in sched.out.getvalue()


def test_a_late_wake_up_fires_each_missed_job_once_with_its_latest_minute(now_is_the_fake_clock):
    start = datetime(2025, 5, 5, 12, 3, 59, tzinfo=UTC)
    sched, clock, _ = scheduler([EVERY_MINUTE, EVERY_FIVE], start, catch_up=0)
    sched.tick()
    clock.advance(minutes=3, seconds=30)  # slept through 12:04, 12:05, 12:06; woke 12:07:29
    sched.catch_up = 300
    assert fired(sched.tick()) == [("succeed", "12:07"), ("add", "12:05")]
    clock.advance(seconds=40)
    assert fired(sched.tick()) == [("succeed", "12:08")]


def test_catch_up_is_bounded():
    sched, clock, _ = scheduler([EVERY_FIVE], datetime(2025, 5, 5, 12, 0, 30, tzinfo=UTC), catch_up=120)
    assert fired(sched.tick()) == [("add", "12:00")]
    clock.advance(minutes=7)  # 12:07:30: 12:05 is 150 s old
    assert sched.tick() == []
    clock.advance(minutes=3)  # 12:10:30
    assert fired(sched.tick()) == [("add", "12:10")]


def test_a_clock_going_back_refires_nothing():
    sched, clock, _ = scheduler([EVERY_MINUTE], datetime(2025, 5, 5, 12, 0, 30, tzinfo=UTC))
    sched.tick()
    clock.advance(minutes=1)
    assert fired(sched.tick()) == [("succeed", "12:01")]
    clock.advance(minutes=-2)
    assert sched.tick() == []
    clock.advance(minutes=2)  # back at 12:01:30
    assert sched.tick() == []
    clock.advance(minutes=1)
    assert fired(sched.tick()) == [("succeed", "12:02")]


def test_disabled_jobs_never_fire():
    off = ("* * * * *", f"{JOBS}.boom", {"enabled": False})
    start = datetime(2025, 5, 5, 12, 0, 30, tzinfo=UTC)
    assert due_slots(jobs(off), start - timedelta(hours=1), start, timedelta(hours=1)) == []


def test_minutes_follow_the_schedule_time_zone(settings):
    settings.TIME_ZONE = "Asia/Kolkata"
    daily = ("0 6 * * *", f"{JOBS}.succeed")
    sched, clock, _ = scheduler([daily], datetime(2025, 5, 5, 0, 29, 50, tzinfo=UTC))
    sched.tick()
    clock.advance(seconds=20)  # 00:30:10 UTC is 06:00:10 in Kolkata
    assert fired(sched.tick()) == [("succeed", "00:30")]
    assert "2025-05-05 06:00" in sched.out.getvalue()


def test_at_most_max_concurrent_runs_go_at_once_the_others_wait_in_due_order(now_is_the_fake_clock):
    start = datetime(2025, 5, 5, 12, 0, 5, tzinfo=UTC)
    now_is_the_fake_clock.move_to(start)
    entries = [("* * * * *", f"{JOBS}.succeed", {"name": f"job{i}"}) for i in range(5)]
    sched, clock, runners = scheduler(entries, start, max_concurrent=2)
    sched.tick()
    assert [name for name, _ in runners.names] == ["job0", "job1"]
    assert len(sched.queue) == 3 and JobRun.objects.count() == 2  # the waiting ones are not even claimed
    runners.finish(0)
    sched.tick()
    assert [name for name, _ in runners.names] == ["job0", "job1", "job2"]
    assert "finish job0 [2025-05-05 12:00] run #" in sched.out.getvalue()


def test_a_full_pool_waits_for_a_runner_to_end_not_for_its_next_look():
    # With every place taken, the loop's wait ends when a runner ends, so its place goes to the next queued
    # fire at once. It slept POLL (0.5 s) instead: at 1,000 every-minute jobs on two CPUs, 585 of 2,000
    # slots succeeded within their minute (bench figure 15a); 2,000 of 2,000 with the wait on the runners.
    from cronjobs.scheduler import Runner, _pidfd

    sched = Scheduler(jobs=jobs(EVERY_MINUTE), out=io.StringIO(), max_concurrent=1)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    pidfd = _pidfd(ended.pid)
    assert pidfd is not None
    slot = datetime.now(UTC)
    sched.running[ended.pid] = Runner(ended.pid, sched.jobs[0], slot, 1, time.monotonic(), pidfd=pidfd)
    started = time.monotonic()
    sched.idle(60)
    assert time.monotonic() - started < 30  # woken by the runner's end, not at the end of the wait
    assert sched.running[ended.pid].ended
    sched.reap()
    assert sched.running == {} and "finish succeed [" in sched.out.getvalue()


def test_a_run_that_waits_past_its_start_limit_is_recorded_missed_not_silently_late(now_is_the_fake_clock):
    start = datetime(2025, 5, 5, 12, 0, 5, tzinfo=UTC)
    now_is_the_fake_clock.move_to(start)
    entries = [("* * * * *", f"{JOBS}.succeed", {"name": "first"}), ("* * * * *", f"{JOBS}.succeed", {"name": "late"})]
    sched, clock, runners = scheduler(entries, start, max_concurrent=1)
    sched.tick()
    clock.advance(seconds=70)  # 12:01:15: "late" waited 75 s for a place; its start limit is 60 s
    now_is_the_fake_clock.move_to(clock.now)
    runners.finish(0)
    sched.tick()
    late = JobRun.objects.get(job_name="late", scheduled_for=start.replace(second=0))
    assert late.status == "missed" and "starting 75s after its minute" in late.result
    assert ("late", "12:00") not in runners.names


def test_jitter_starts_a_job_at_its_fixed_second_and_still_claims_the_minute(now_is_the_fake_clock):
    start = datetime(2025, 5, 5, 12, 0, 0, 500_000, tzinfo=UTC)
    now_is_the_fake_clock.move_to(start)
    entry = ("* * * * *", f"{JOBS}.succeed", {"name": "spread", "jitter": 30})
    offset = jobs(entry)[0].start_offset
    assert 0 < offset <= 30  # "spread" hashes to a non-zero second (if not, pick another name)
    sched, clock, runners = scheduler([entry], start)
    sched.tick()
    assert runners.launched == []  # not before its second
    clock.advance(seconds=offset)
    now_is_the_fake_clock.move_to(clock.now)
    sched.tick()
    assert runners.names == [("spread", "12:00")]
    assert runners.launched[0][1].scheduled_for == start.replace(microsecond=0)


def test_a_runner_that_cannot_start_is_recorded_failed_and_the_loop_goes_on(now_is_the_fake_clock):
    start = datetime(2025, 5, 5, 12, 0, 5, tzinfo=UTC)
    now_is_the_fake_clock.move_to(start)
    sched, clock, _ = scheduler([EVERY_MINUTE], start)

    def broken(job, record):
        raise OSError("fork: Resource temporarily unavailable")

    sched.launch = broken
    sched.tick()
    run = JobRun.objects.get(job_name="succeed")
    assert run.status == "failed" and "its runner process could not be started: fork:" in run.result
    assert "could not be started" in sched.out.getvalue()


def test_stop_waits_for_running_runs_then_interrupts_what_is_left(now_is_the_fake_clock, monkeypatch, settings):
    settings.CRONJOBS_STOP_WAIT = 0.01
    start = datetime(2025, 5, 5, 12, 0, 5, tzinfo=UTC)
    now_is_the_fake_clock.move_to(start)
    sched, clock, runners = scheduler([EVERY_MINUTE], start, grace=0)
    sent = []
    monkeypatch.setattr("cronjobs.scheduler._signal", lambda pid, signum: sent.append((pid, signum)))
    sched.tick()
    sched.request_stop(signal.SIGTERM)

    def ends_on_sigterm(pids):
        return [(pid, 143) for pid, signum in sent if signum == signal.SIGTERM and pid in pids]

    sched.collect = ends_on_sigterm
    sched.shutdown()
    assert sent[0] == (runners.launched[0][2], signal.SIGTERM)  # the runner records an interrupted run
    log = sched.out.getvalue()
    assert "grace period over: interrupting succeed" in log and "exit 143 (interrupted by SIGTERM)" in log
    assert log.rstrip().endswith("stopped")


def crontab_work(monkeypatch, *args) -> tuple[int, str, object]:
    """`manage.py crontab work` in this process, its loop replaced: (exit code, stderr, the scheduler)."""
    seen = {}

    def started(scheduler):
        seen["scheduler"] = scheduler

    monkeypatch.setattr("cronjobs.scheduler.run_forever", started)
    err = io.StringIO()
    try:
        call_command("crontab", "work", *args, stdout=io.StringIO(), stderr=err)
    except CommandError as error:
        return error.returncode, err.getvalue() + str(error), None
    return 0, err.getvalue(), seen.get("scheduler")


def test_work_starts_on_a_bad_cronjobs_firing_nothing_and_saying_why(settings, monkeypatch):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed"), ("61 * * * *", f"{JOBS}.succeed", {"name": "bad"})]
    code, stderr, scheduler = crontab_work(monkeypatch)
    assert code == 0, stderr
    assert scheduler.jobs == () and "cronjobs.E003" in scheduler.config_error


@pytest.mark.parametrize("value", [-1, "30", True, float("nan")])
def test_bad_work_settings_are_refused_with_exit_2(settings, monkeypatch, value):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed")]
    settings.CRONJOBS_WORK_GRACE = value
    code, stderr, _ = crontab_work(monkeypatch)
    assert code == 2 and "settings.CRONJOBS_WORK_GRACE must be a number of seconds" in stderr, stderr


def test_work_refuses_a_negative_grace_with_exit_2(settings, monkeypatch):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed")]
    code, stderr, _ = crontab_work(monkeypatch, "--grace", "-3")
    assert code == 2 and "--grace must be >= 0" in stderr, stderr


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # creates the test database shared_db names on PostgreSQL
def test_two_work_processes_fire_the_minute_once_and_stop_cleanly_on_sigterm(shared_db, world_dir):
    """The acceptance run: two real `crontab work` processes on one database fire an every-minute job;
    one claims the minute and runs it, the other finds it claimed; SIGTERM while the job runs waits for
    it, then exits 0."""
    started, release = world_dir / "started", world_dir / "release"
    config = write_config(
        world_dir, shared_db, CRONJOBS=[["* * * * *", f"{JOBS}.wait_for_release", [str(started), str(release)]]]
    )
    works = [start_work(config, "--grace", "150", name=f"crontab work {i}") for i in (1, 2)]
    try:
        # Each fires the current minute on starting (a start fires each job's latest minute within catch-up).
        fires = [work.wait_for("fire wait_for_release [") for work in works]
        deadline = time.monotonic() + WAIT
        while not started.exists():
            assert all(w.process.poll() is None for w in works), [w.output for w in works]
            assert time.monotonic() < deadline, [w.output for w in works]
            time.sleep(0.05)
        holder = next(w for w in works if w.has("] run #"))  # "fire wait_for_release [<minute>] run #1 pid 42"
        minute = holder.wait_for("] run #").split("[", 1)[1][:16]
        other = next(w for w in works if w is not holder)
        # The other one fired the same minute, or the next: either way it found it claimed or running.
        assert any(w.has("fire wait_for_release [") for w in works), fires
        for work in works:
            work.signal(signal.SIGTERM)
        # The holder waits for its running job, still alive, until the job is released.
        holder.wait_for("stopping: no more fires; waiting up to 150s for 1 run(s): wait_for_release")
        assert holder.process.poll() is None
        release.touch()
        assert [work.wait() for work in works] == [0, 0], [w.output for w in works]
    finally:
        release.touch()
        for work in works:
            work.stop()
    assert holder.has(f"finish wait_for_release [{minute}] run #")
    assert holder.output.rstrip().endswith("stopped")
    assert not other.has(f"finish wait_for_release [{minute}]")
    runs = [r for r in shared_db.runs("wait_for_release") if r["status"] == "succeeded"]
    assert len(runs) == 1 and runs[0]["trigger"] == "work" and runs[0]["result"] == "released", runs


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sigkill_of_crontab_work_mid_run_leaves_the_run_to_finish_and_record_itself(shared_db, world_dir):
    """The runner process outlives the scheduler it was forked from: the run ends truthfully, never `running`."""
    started, release = world_dir / "started", world_dir / "release"
    config = write_config(
        world_dir, shared_db, CRONJOBS=[["* * * * *", f"{JOBS}.wait_for_release", [str(started), str(release)]]]
    )
    work = start_work(config)
    try:
        work.wait_for("fire wait_for_release [")
        deadline = time.monotonic() + WAIT
        while not started.exists():
            assert time.monotonic() < deadline, work.output
            time.sleep(0.05)
        work.process.kill()
        work.wait()
        release.touch()
        deadline = time.monotonic() + WAIT
        while not [r for r in shared_db.runs("wait_for_release") if r["status"] != "running"]:
            assert time.monotonic() < deadline, shared_db.runs("wait_for_release")
            time.sleep(0.1)
    finally:
        release.touch()
        work.stop()
    (run,) = [r for r in shared_db.runs("wait_for_release") if r["status"] != "skipped"]
    assert run["status"] == "succeeded" and run["result"] == "released", run


def start_bin_run(config, **env) -> tuple[Proc, int]:
    """bin/run (runserver + crontab work) on a free port, started as a terminal starts a job."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = clean_env(
        CRONJOBS_TEST_CONFIG=str(config),
        DJANGO_SETTINGS_MODULE=SUBPROCESS_SETTINGS,
        PYTHON=sys.executable,
        PYTHONUNBUFFERED="1",
        **env,
    )
    return Proc("bin/run", ["bin/run", f"127.0.0.1:{port}"], environment, terminal_job=True), port


# slow: no clock to fake, but three Django processes (runserver, its autoreloader, crontab work):
# about 6 CPU-seconds, a tenth of make test's budget.
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # creates the test database shared_db names on PostgreSQL
def test_bin_run_serves_the_web_and_crontab_work_and_ctrl_c_stops_both(shared_db, world_dir):
    """`make run`'s last step: runserver and `crontab work` side by side; a Ctrl-C (SIGINT to the
    terminal's process group) stops both and nothing is left running."""
    config = write_config(world_dir, shared_db, CRONJOBS=[["0 0 1 1 *", f"{JOBS}.succeed"]])
    script, port = start_bin_run(config)
    try:
        script.wait_for("crontab work: 1 job(s)")
        script.wait_for(f"Starting development server at http://127.0.0.1:{port}/")
        os.killpg(script.process.pid, signal.SIGINT)
        assert script.wait() == 130, script.output
    finally:
        script.stop()
    assert script.has("UTC stopped") or script.has(" stopped"), script.output
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    ps = subprocess.run(["ps", "-eo", "pgid,args"], capture_output=True, text=True).stdout
    assert not [line for line in ps.splitlines() if line.split(None, 1)[0] == str(script.process.pid)], ps


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_bin_run_starts_crontab_work_again_until_it_can_start(shared_db, world_dir):
    """`crontab work` keeps going through a broken CRONJOBS by itself; one that cannot start at all (here
    a refused CRONJOBS_WORK_GRACE) is started again by bin/run until the fix, as runserver waits."""
    config = write_config(world_dir, shared_db, CRONJOBS=[["0 0 1 1 *", f"{JOBS}.succeed"]], CRONJOBS_WORK_GRACE=-1)
    script, _port = start_bin_run(config, WORK_RESTART_DELAY="1")
    try:
        script.wait_for("crontab work exited with code 2; starting it again in 1 s")
        config.write_text(config.read_text().replace('"CRONJOBS_WORK_GRACE": -1', '"CRONJOBS_WORK_GRACE": 1'))
        script.wait_for("crontab work: 1 job(s)")
        os.killpg(script.process.pid, signal.SIGINT)
        assert script.wait() == 130, script.output
    finally:
        script.stop()
