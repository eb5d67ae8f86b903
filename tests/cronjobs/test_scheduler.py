"""`crontab work`: due-minute logic and catch-up with an injected clock, shutdown, and bad configuration refused."""

import io
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from cronjobs.registry import parse_cronjobs
from cronjobs.scheduler import Scheduler, due_slots, work_settings
from tests.cronjobs.conftest import SUBPROCESS_SETTINGS, clean_env, write_config
from tests.cronjobs.procs import WAIT, Proc, start_work

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


class FakeProcess:
    """Stands in for a run process: finishes when told to, records the signals it gets."""

    _pids = iter(range(90000, 99999))

    def __init__(self, argv):
        self.argv = argv
        self.pid = next(self._pids)
        self.returncode = None
        self.stdout = None
        self.signals = []

    def poll(self):
        return self.returncode

    def send_signal(self, signum):
        self.signals.append(signum)
        self.returncode = -signum


def scheduler(entries, start, **kwargs):
    clock = Clock(start)
    spawned = []

    def spawn(argv):
        spawned.append(FakeProcess(argv))
        return spawned[-1]

    sched = Scheduler(
        jobs=jobs(*entries), manage_py=Path("/srv/app/manage.py"), out=io.StringIO(), clock=clock, spawn=spawn, **kwargs
    )
    return sched, clock, spawned


def fired(pairs):
    return [(job.name, slot.astimezone(UTC).strftime("%H:%M")) for job, slot in pairs]


EVERY_MINUTE = ("* * * * *", f"{JOBS}.succeed")
EVERY_FIVE = ("*/5 * * * *", f"{JOBS}.add", [1, 2])


def test_the_minute_it_starts_in_is_not_fired_the_next_one_is():
    sched, clock, spawned = scheduler([EVERY_MINUTE, EVERY_FIVE], datetime(2025, 5, 5, 12, 3, 40, tzinfo=UTC))
    assert sched.tick() == []
    clock.advance(seconds=15)
    assert sched.tick() == []
    clock.advance(seconds=5, microseconds=10_000)  # 12:04:00.01
    assert fired(sched.tick()) == [("succeed", "12:04")]
    assert sched.tick() == []  # same minute: once
    clock.advance(minutes=1)  # 12:05
    assert fired(sched.tick()) == [("succeed", "12:05"), ("add", "12:05")]
    assert spawned[-1].argv == [
        spawned[-1].argv[0],
        "/srv/app/manage.py",
        "crontab",
        "run",
        "add",
        "--scheduled-for",
        "2025-05-05T12:05:00+00:00",
        "--trigger",
        "work",
        "--verbosity",
        "2",
    ]


def test_a_late_wake_up_fires_each_missed_job_once_with_its_latest_minute():
    sched, clock, _ = scheduler([EVERY_MINUTE, EVERY_FIVE], datetime(2025, 5, 5, 12, 3, 59, tzinfo=UTC))
    sched.tick()
    clock.advance(minutes=3, seconds=30)  # slept through 12:04, 12:05, 12:06; woke 12:07:29
    assert fired(sched.tick()) == [("succeed", "12:07"), ("add", "12:05")]
    clock.advance(seconds=40)
    assert fired(sched.tick()) == [("succeed", "12:08")]


def test_catch_up_is_bounded():
    sched, clock, _ = scheduler([EVERY_FIVE], datetime(2025, 5, 5, 12, 0, 30, tzinfo=UTC), catch_up=120)
    sched.tick()
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


def test_finishes_are_logged_with_exit_code_and_duration():
    sched, clock, spawned = scheduler([EVERY_MINUTE], datetime(2025, 5, 5, 12, 0, 30, tzinfo=UTC))
    sched.tick()
    clock.advance(minutes=1)
    sched.tick()
    spawned[0].returncode = 1
    sched.reap()
    log = sched.out.getvalue()
    assert "fire succeed [2025-05-05 12:01]" in log
    assert "finish succeed [2025-05-05 12:01] exit 1 (job failed) in " in log
    assert sched.children == []


def test_stop_waits_for_running_jobs_then_interrupts_what_is_left(monkeypatch):
    sched, clock, spawned = scheduler([EVERY_MINUTE], datetime(2025, 5, 5, 12, 0, 30, tzinfo=UTC), grace=0)
    monkeypatch.setattr("cronjobs.scheduler.KILL_AFTER", 0)
    monkeypatch.setattr("cronjobs.scheduler.os.killpg", lambda pid, signum: (_ for _ in ()).throw(ProcessLookupError))
    sched.tick()
    clock.advance(minutes=1)
    sched.tick()
    sched.request_stop(signal.SIGTERM)
    sched.shutdown()
    assert spawned[0].signals == [signal.SIGINT]  # the runner records an interrupted run
    assert "grace period over: interrupting succeed" in sched.out.getvalue()
    assert sched.out.getvalue().rstrip().endswith("stopped")


def test_a_run_process_that_cannot_start_is_logged_and_the_loop_goes_on():
    sched, clock, _ = scheduler([EVERY_MINUTE], datetime(2025, 5, 5, 12, 0, 30, tzinfo=UTC))

    def broken(argv):
        raise OSError("no such interpreter")

    sched.spawn = broken
    sched.tick()
    clock.advance(minutes=1)
    assert fired(sched.tick()) == [("succeed", "12:01")]
    assert "could not start the run process: no such interpreter" in sched.out.getvalue()


@pytest.mark.parametrize("value", [-1, "30", True, float("nan")])
def test_bad_work_settings_are_refused(settings, value):
    settings.CRONJOBS_WORK_GRACE = value
    with pytest.raises(ValueError, match="CRONJOBS_WORK_GRACE must be a number of seconds"):
        work_settings()


def crontab_work(monkeypatch, *args) -> tuple[int, str]:
    """`manage.py crontab work` in this process: its exit code and stderr. It must refuse to start, so
    the loop itself is replaced by a failure."""

    def started(scheduler):
        raise AssertionError("crontab work started its loop")

    monkeypatch.setattr("cronjobs.scheduler.run_forever", started)
    err = io.StringIO()
    try:
        call_command("crontab", "work", *args, stdout=io.StringIO(), stderr=err)
    except CommandError as error:
        return error.returncode, err.getvalue() + str(error)
    return 0, err.getvalue()


def test_work_refuses_to_start_on_bad_cronjobs_with_exit_2(settings, monkeypatch):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed"), ("61 * * * *", f"{JOBS}.succeed", {"name": "bad"})]
    code, stderr = crontab_work(monkeypatch)
    assert code == 2, stderr
    assert "cronjobs.E003" in stderr and "not starting" in stderr


def test_work_refuses_a_negative_grace_with_exit_2(settings, monkeypatch):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed")]
    code, stderr = crontab_work(monkeypatch, "--grace", "-3")
    assert code == 2 and "--grace must be >= 0" in stderr, stderr


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # creates the test database shared_db names on PostgreSQL
def test_two_work_processes_fire_the_minute_once_and_stop_cleanly_on_sigterm(shared_db, world_dir):
    """The acceptance run: a real `crontab work` (two of them, on one database) fires an every-minute job
    at the next minute boundary; SIGTERM while the job runs waits for it, then exits 0."""
    started, release = world_dir / "started", world_dir / "release"
    config = write_config(
        world_dir, shared_db, CRONJOBS=[["* * * * *", f"{JOBS}.wait_for_release", [str(started), str(release)]]]
    )
    for _attempt in range(3):
        works = [start_work(config, "--grace", "150", name=f"crontab work {i}") for i in (1, 2)]
        # Both must start within one minute to fire the same next one; a start straddling a
        # boundary is retried (the minute each started in is never fired, so nothing ran yet).
        if len({work.wait_for("crontab work:")[:16] for work in works}) == 1:
            break
        for work in works:
            work.stop()
    try:
        fires = [work.wait_for("fire wait_for_release [") for work in works]
        minutes = {line.split("[", 1)[1][:16] for line in fires}
        assert len(minutes) == 1, fires  # both fired the same minute
        # One run process claims the minute and starts the job; the other's finds it claimed and
        # finishes at once (quietly: a scheduled run prints nothing unless it fails).
        deadline = time.monotonic() + WAIT
        while not (started.exists() and any(w.has("finish wait_for_release [") for w in works)):
            assert all(w.process.poll() is None for w in works), [w.output for w in works]
            assert time.monotonic() < deadline, [w.output for w in works]
            time.sleep(0.05)
        other = next(w for w in works if w.has("finish wait_for_release ["))
        holder = next(w for w in works if w is not other)
        assert other.has(f"finish wait_for_release [{next(iter(minutes))}] exit 0 (ok)"), other.output

        for work in works:
            work.signal(signal.SIGTERM)
        # The holder waits for its running job, still alive, until the job is released.
        holder.wait_for("stopping: no more fires; waiting up to 150s for 1 running job(s): wait_for_release")
        assert holder.process.poll() is None
        release.touch()
        assert [work.wait() for work in works] == [0, 0], [w.output for w in works]
    finally:
        release.touch()
        for work in works:
            work.stop()

    minute = minutes.pop()
    assert holder.has(f"finish wait_for_release [{minute}] exit 0 (ok)")
    assert holder.output.rstrip().endswith("stopped")
    runs = [r for r in shared_db.runs("wait_for_release") if str(r["scheduled_for"]).startswith(minute)]
    assert len(runs) == 1, shared_db.runs("wait_for_release")
    assert runs[0]["status"] == "succeeded" and runs[0]["trigger"] == "work" and runs[0]["result"] == "released"


# slow: no clock to fake, but three Django processes (runserver, its autoreloader, crontab work):
# about 6 CPU-seconds, a tenth of make test's budget.
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)  # creates the test database shared_db names on PostgreSQL
def test_bin_run_serves_the_web_and_crontab_work_and_ctrl_c_stops_both(shared_db, world_dir):
    """`make run`'s last step: runserver and `crontab work` side by side; a Ctrl-C (SIGINT to the
    terminal's process group) stops both and nothing is left running."""
    config = write_config(world_dir, shared_db, CRONJOBS=[["0 0 1 1 *", f"{JOBS}.succeed"]])
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = clean_env(
        CRONJOBS_TEST_CONFIG=str(config),
        DJANGO_SETTINGS_MODULE=SUBPROCESS_SETTINGS,
        PYTHON=sys.executable,
        PYTHONUNBUFFERED="1",
    )
    script = Proc("bin/run", ["bin/run", f"127.0.0.1:{port}"], env, terminal_job=True)
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
