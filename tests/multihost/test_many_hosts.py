"""Many machines, one clock (docs/faults.md, "Many machines"): the multi-host kit's cases, each asserted
on the run history. Hosts, proxies and clocks: tests/multihost/conftest.py."""

from __future__ import annotations

import os
import random
import re
import signal
import time
from datetime import timedelta

import pytest

from cronjobs import dbclock
from cronjobs.models import JobRun, SchedulerBeat
from tests.multihost.conftest import LEASE, TTL, WAIT, hold

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.multihost]

MINUTE = timedelta(minutes=1)


def ran(runs: list[JobRun]) -> list[JobRun]:
    """The runs that executed the job (not the recorded skips and misses)."""
    return [run for run in runs if run.status not in (JobRun.Status.SKIPPED, JobRun.Status.MISSED)]


def assert_each_minute_once(kit, job: str) -> list[JobRun]:
    """Every minute from the first to the last has exactly one row, and each row that ran the job ran it
    once: every execution the job noted (its start, on the database's clock) falls inside one run's
    start..finish, and no run holds two. Returns the runs."""
    runs = kit.runs(job)
    minutes = [run.scheduled_for for run in runs]
    assert len(minutes) == len(set(minutes)), runs
    expected = [minutes[0] + n * MINUTE for n in range(int((minutes[-1] - minutes[0]) / MINUTE) + 1)]
    assert minutes == expected, f"minutes without a run, or off the minute: {minutes}"
    starts = [note for note in kit.executions(job) if note["what"] == "start"]
    held = {run.pk: [] for run in ran(runs)}
    for note in starts:
        owners = [
            run
            for run in ran(runs)
            if run.started_at.timestamp() <= note["at"]
            and (run.finished_at is None or note["at"] <= run.finished_at.timestamp() + 0.5)
        ]
        if len(owners) > 1:
            # Back-to-back runs: the half second of slack after one's finish reaches into the next one's
            # start. The run that holds the note without the slack owns it.
            owners = [run for run in owners if run.finished_at is None or note["at"] <= run.finished_at.timestamp()]
        assert len(owners) == 1, (note, owners)
        held[owners[0].pk].append(note)
    # A run whose host died may have died before its job started; every other one ran it exactly once.
    statuses = {run.pk: run.status for run in runs}
    assert all(len(notes) == 1 or (not notes and statuses[pk] == "interrupted") for pk, notes in held.items()), held
    return runs


def test_three_crontab_work_hosts_run_each_minute_once(kit):
    kit.configure(CRONJOBS=[hold("tick", 2, kit.folder)])
    hosts = [kit.host(name) for name in ("hostA", "hostB", "hostC")]
    # Started in the first half of a minute: a catch-up run started at :59 would still hold the job (2 s)
    # when the next minute comes, which is then rightly skipped ("still running"), not what this tests.
    kit.wait_until("the first half of a minute", lambda: 5 <= dbclock.now().second < 30, every=0.2)
    for host in hosts:
        host.work()
    # Each starts by firing the current minute (its catch-up), then every minute: two minutes at least.
    kit.wait_until(
        "two minutes of tick run to the end",
        lambda: len([r for r in kit.runs("tick") if r.status == JobRun.Status.SUCCEEDED]) >= 2,
    )
    runs = assert_each_minute_once(kit, "tick")
    assert {run.status for run in runs} == {JobRun.Status.SUCCEEDED}, runs
    assert {run.host for run in runs} <= {"hostA", "hostB", "hostC"}
    # The other two hosts fired the same minutes and were refused by the database.
    refused = sum(proc.output.count("already claimed by run #") for host in hosts for proc in host.procs)
    assert refused >= 2 * len(runs) - 2, kit.output()


def running(job: str) -> JobRun | None:
    return JobRun.objects.filter(job_name=job, status=JobRun.Status.RUNNING).first()


def state_of(health: dict, job: str) -> str:
    return next(item["state"] for item in health["jobs"] if item["name"] == job)


def test_a_host_killed_mid_run_is_stuck_within_a_lease_closed_within_two_and_the_next_minute_runs_elsewhere(kit):
    kit.configure(CRONJOBS=[hold("long", 40, kit.folder, timeout=50)])
    for name in ("hostA", "hostB", "hostC"):
        kit.host(name).work()
    run = kit.wait_until("a run of long renewing its lease", lambda: (r := running("long")) and r.renewed_at and r)
    victim = kit.hosts[run.host]
    others = [host for host in kit.hosts.values() if host is not victim]
    time.sleep(2 * LEASE)  # a few renewals
    assert state_of(kit.health(), "long") == "running"
    # The live hosts' reapers close a dead run within about a second of its lease expiring: a loaded
    # machine's polls could miss that window, so they hang (SIGSTOP) until `stuck` has been seen.
    for host in others:
        host.pause()
    victim.kill()
    killed = time.monotonic()
    kit.wait_until("/health/cron/ says long is stuck", lambda: state_of(kit.health(), "long") == "stuck", every=0.05)
    stuck_after = time.monotonic() - killed
    for host in others:
        host.resume()
    kit.wait_until("the dead run closed", lambda: JobRun.objects.get(pk=run.pk).status != "running", every=0.05)
    closed_after = time.monotonic() - killed
    dead = JobRun.objects.get(pk=run.pk)
    print(
        f"\nSIGKILL of {victim.name}: stuck on /health/cron/ after {stuck_after:.2f}s, closed after {closed_after:.2f}s"
    )
    print(f"  (lease {LEASE:g}s, expires {TTL:g}s after the last renewal) {dead.result}")
    assert dead.status == JobRun.Status.INTERRUPTED
    assert f"no renewal from {victim.name} pid {dead.pid} since {dead.renewed_at.isoformat(timespec='seconds')}" in (
        dead.result
    )
    # Health knew as soon as the lease expired; a live host's reaper closed it within two lease periods.
    assert dead.finished_at >= dead.lease_expires_at
    assert stuck_after <= TTL + LEASE, stuck_after
    assert (dead.finished_at - dead.renewed_at).total_seconds() <= 2 * TTL
    assert closed_after <= 2 * TTL, closed_after
    # The next minute after it was closed runs on a live host; a minute that came while its lease was
    # still current was refused (still running), as it should be.
    following = kit.wait_until(
        "a later minute of long running on a live host",
        lambda: (
            JobRun.objects.filter(job_name="long", scheduled_for__gt=dead.scheduled_for)
            .exclude(status=JobRun.Status.SKIPPED)
            .first()
        ),
    )
    assert following.host != victim.name and following.status in ("running", "succeeded"), following
    refused = JobRun.objects.filter(job_name="long", status=JobRun.Status.SKIPPED)
    assert all(run.started_at <= dead.finished_at for run in refused), refused


def partitioned_run(kit, job: str):
    """hostA claims this minute of `job` and runs it; hostB and hostC (`crontab work`) find it claimed and
    keep reaping. Returns (hostA, its `crontab run` process, the run)."""
    a = kit.host("hostA")
    process = a.run_scheduled(job)
    run = kit.wait_until(f"hostA running {job}", lambda: (r := running(job)) and r.renewed_at and r)
    others = [kit.host(name).work() for name in ("hostB", "hostC")]
    # Each fires the minute hostA holds (or, past the minute boundary, the next one: still running).
    seen = (f"already claimed by run #{run.pk} (hostA)", f"still running: run #{run.pk} on hostA")
    kit.wait_until(
        "hostB and hostC up and refused", lambda: all(any(t in line for t in seen for line in o.lines) for o in others)
    )
    return a, process, run


def closed_by_another_host(kit, run: JobRun) -> JobRun:
    closed = kit.wait_until(
        "another host closes the run", lambda: (r := JobRun.objects.get(pk=run.pk)).status != "running" and r
    )
    assert closed.status == JobRun.Status.INTERRUPTED, closed
    assert "its lease expired at" in closed.result and f"no renewal from hostA pid {closed.pid}" in closed.result
    assert closed.finished_at >= closed.lease_expires_at
    closers = [
        host.name
        for host in kit.hosts.values()
        if any(f"closed run #{run.pk} " in line for proc in host.procs for line in proc.lines)
    ]
    assert closers and "hostA" not in closers, kit.output()
    return closed


def test_a_partition_mid_run_keeps_the_real_outcome_beside_the_record_and_never_runs_the_minute_again(kit):
    release = kit.folder / "release"
    kit.configure(CRONJOBS=[hold("cutoff", 120, kit.folder, release=str(release), timeout=150)])
    a, process, run = partitioned_run(kit, "cutoff")
    a.proxy.cut()
    release.touch()  # the job succeeds while hostA cannot tell anyone
    closed = closed_by_another_host(kit, run)
    assert closed.late_status == ""
    a.proxy.heal()
    assert process.wait() == 4, process.output  # outcome not recorded as the record: kept beside it
    assert f"cutoff run #{run.pk} succeeded, but another process had already closed the run as interrupted" in (
        process.output
    )
    final = JobRun.objects.get(pk=run.pk)
    assert (final.status, final.result, final.finished_at) == (closed.status, closed.result, closed.finished_at)
    assert (final.late_status, final.late_result) == ("succeeded", "held on hostA")
    assert final.late_finished_at > final.finished_at
    # That minute ran once; no host ran it again.
    assert [r.pk for r in kit.runs("cutoff") if r.scheduled_for == run.scheduled_for] == [run.pk]
    assert [n["host"] for n in kit.executions("cutoff") if n["what"] == "start"].count("hostA") == 1


def test_a_run_whose_database_stays_away_exits_4_saying_its_outcome_was_not_recorded(kit):
    """The job succeeded, the database never came back within the save retries: exit 4 (not the job's
    "failed"), one line that says so, and the record claims no more than it knew (still `running`, left to
    its lease)."""
    release = kit.folder / "release"
    kit.configure(
        CRONJOBS=[hold("unsaved", 120, kit.folder, release=str(release), timeout=150)],
        CRONJOBS_SAVE_RETRY_DELAYS=[0.1, 0.1],
    )
    a = kit.host("hostA")
    process = a.run_scheduled("unsaved")
    run = kit.wait_until("hostA running unsaved", lambda: (r := running("unsaved")) and r.renewed_at and r)
    a.proxy.cut()
    release.touch()  # the job ends well at once, before its supervisor could miss a lease renewal
    assert process.wait() == 4, process.output
    assert f"run #{run.pk} of unsaved succeeded but its outcome could not be recorded" in process.output
    assert "Traceback" not in process.output
    a.proxy.heal()
    assert JobRun.objects.get(pk=run.pk).status == JobRun.Status.RUNNING


def test_a_partitioned_host_stops_its_job_before_its_lease_expires_and_says_so_once_healed(kit):
    kit.configure(CRONJOBS=[hold("stranded", 120, kit.folder, timeout=150)])
    a, process, run = partitioned_run(kit, "stranded")
    a.proxy.cut()
    closed = closed_by_another_host(kit, run)
    # The job was stopped on hostA (its supervisor could not renew the lease) before anyone closed the run:
    # no live run was closed.
    ended = kit.wait_until(
        "the job's end noted", lambda: [n for n in kit.executions("stranded") if n["what"] != "start"]
    )
    assert ended[0]["what"] == "stopped" and ended[0]["local"] < closed.finished_at.timestamp(), ended
    a.proxy.heal()
    assert process.wait() == 4, process.output
    final = JobRun.objects.get(pk=run.pk)
    assert final.late_status == JobRun.Status.INTERRUPTED
    assert final.late_result.startswith("stopped because its lease was lost (no lease renewal succeeded for"), final
    assert [r.pk for r in kit.runs("stranded") if r.scheduled_for == run.scheduled_for] == [run.pk]


SKEWS = {"hostL1": None, "hostL2": "+90s", "hostL3": "-90s"}


def test_hosts_90_seconds_apart_never_close_a_live_run_nor_start_one_beside_it_and_report_the_skew(kit):
    # One job per host, each claimed first by that host and running 65 s: across the next minute, when every
    # host fires every job again and reaps every lease period.
    jobs = {name: f"long_{name[-2:]}" for name in SKEWS}
    kit.configure(CRONJOBS=[hold(job, 65, kit.folder, timeout=90) for job in jobs.values()])
    hosts = {name: kit.host(name, skew) for name, skew in SKEWS.items()}
    for name, host in hosts.items():
        host.run_scheduled(jobs[name])
    first = {
        job: kit.wait_until(f"{job} running", lambda job=job: (r := running(job)) and r.renewed_at and r)
        for job in jobs.values()
    }
    for host in hosts.values():
        host.work()
    kit.wait_until(
        "the next minute of each job refused (still running) and the first runs finished",
        lambda: all(
            len(kit.runs(job)) >= 2 and JobRun.objects.get(pk=first[job].pk).status != "running"
            for job in jobs.values()
        ),
    )
    expected_offset = {"hostL1": 0, "hostL2": 90, "hostL3": -90}
    for name, job in jobs.items():
        runs = kit.runs(job)
        owner = JobRun.objects.get(pk=first[job].pk)
        assert (owner.host, owner.status, owner.late_status) == (name, "succeeded", ""), (
            owner.result,
            owner.late_result,
        )
        assert abs(owner.clock_offset - expected_offset[name]) < 2, owner.clock_offset
        refused = [r for r in runs if r.pk != owner.pk]
        assert refused and all(r.status == "skipped" for r in refused), refused
        assert all(f"still running: run #{owner.pk} on {name}" in r.result for r in refused), refused
        assert len(ran(runs)) == 1
    assert not JobRun.objects.filter(status=JobRun.Status.INTERRUPTED).exists()
    # The skew is reported: a warning line on the skewed hosts, their heartbeats, the runs they claimed.
    for name, direction in (("hostL2", "ahead of"), ("hostL3", "behind")):
        assert re.search(rf"{name}'s clock is 9\d\.\ds {direction} the database's", kit.hosts[name].output())
        beat = SchedulerBeat.objects.get(host=name)
        assert abs(beat.clock_offset - expected_offset[name]) < 2
    assert "hostL1's clock is" not in kit.output()
    clock = [item["problem"] for item in kit.health()["problems"] if item["kind"] == "clock"]
    assert len(clock) == 2, clock
    assert any(re.match(r"hostL2's clock is 9\d\.\ds ahead of the database's", text) for text in clock), clock
    assert any(re.match(r"hostL3's clock is 9\d\.\ds behind the database's", text) for text in clock), clock
    show = kit.hosts["hostL1"].manage("crontab", "show")
    assert re.search(r"^WARNING clock: hostL2's clock is 9\d\.\ds ahead of the database's", show.stdout, re.M), show


def test_a_host_ten_minutes_ahead_refuses_to_claim_and_the_others_carry_on(kit):
    kit.configure(CRONJOBS=[hold("tick", 2, kit.folder)])
    ahead = kit.host("hostL4", "+10m")
    fine = kit.host("hostL1")
    refused = ahead.manage("crontab", "run", "tick", "--scheduled")
    assert refused.returncode == 5, refused
    lines = (refused.stdout + refused.stderr).strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(
        r"CommandError: tick: hostL4's clock is 600\.\ds ahead of the database's \(more than CRONJOBS_CLOCK_SKEW_MAX "
        r"= 300s\): this host claims no runs until its clock is corrected \(NTP\); nothing claimed",
        lines[0],
    ), lines
    ahead.work()
    fine.work()
    kit.wait_until("hostL1 runs the minute", lambda: any(r.status == "succeeded" for r in kit.runs("tick")))
    kit.hosts["hostL4"].procs[0].wait_for("this host claims no runs until its clock is corrected")
    assert {r.host for r in kit.runs("tick")} == {"hostL1"}


def test_three_cron_hosts_run_each_minute_once_and_a_host_cut_off_before_the_minute_claims_nothing(kit):
    kit.configure(CRONJOBS=[hold("tick", 2, kit.folder)])
    hosts = [kit.host(name) for name in ("hostA", "hostB", "hostC")]
    crons = [host.cron("tick") for host in hosts]
    first = kit.wait_until("a minute fired by the three crons", lambda: all(c.has("exit ") for c in crons))
    assert first
    hosts[0].proxy.cut()  # before the next minute: hostA cannot reach the database when its cron fires
    kit.wait_until("the next minute fired by the three crons", lambda: all(c.output.count("exit ") >= 2 for c in crons))
    hosts[0].proxy.heal()
    kit.wait_until("both minutes run to the end", lambda: all(r.status != "running" for r in kit.runs("tick")))
    runs = assert_each_minute_once(kit, "tick")
    assert len(runs) == 2 and {r.status for r in runs} == {JobRun.Status.SUCCEEDED}, runs
    assert runs[1].host in ("hostB", "hostC") and all(r.trigger == "crontab" for r in runs)
    # hostA's second `crontab run`: exit 3, one line, nothing recorded; every other run exits 0 quietly.
    assert crons[0].lines[0] == "exit 0 hostA" and crons[0].lines[2:] == ["exit 3 hostA"], crons[0].lines
    assert re.fullmatch(
        r"CommandError: tick: run history unreachable \(postgresql database test_\S+\): OperationalError: .*; "
        r"nothing recorded, the job did not run",
        crons[0].lines[1],
    ), crons[0].lines
    for host, cron in zip(hosts[1:], crons[1:], strict=True):
        assert cron.lines == [f"exit 0 {host.name}"] * 2, cron.lines


def test_a_restart_storm_never_runs_a_minute_twice(kit):
    kit.configure(CRONJOBS=[hold("tick", 2, kit.folder), hold("slow", 20, kit.folder, timeout=40)])
    storm = kit.host("hostA")
    for name in ("hostB", "hostC"):
        kit.host(name).work()
    # Ten kills of hostA's `crontab work` within a minute, each followed by a restart: every other one a
    # crash of the whole host (its runs die too), the others of the scheduler alone (its runs go on).
    # The storm starts in mid-minute, so that the minute boundary falls in the middle of it.
    kit.wait_until("mid-minute", lambda: 20 <= dbclock.now().second < 30, every=0.2)
    for kill in range(10):
        proc = storm.work()
        proc.wait_for("crontab work: ")
        time.sleep(random.uniform(3, 5))
        if kill % 2:
            storm.kill()
        else:
            os.kill(proc.process.pid, signal.SIGKILL)
            proc.process.wait(30)
    storm.work()
    kit.wait_until(
        "every run closed",
        lambda: not JobRun.objects.filter(status=JobRun.Status.RUNNING).exists(),
        timeout=WAIT,
    )
    for job in ("tick", "slow"):
        runs = assert_each_minute_once(kit, job)
        assert len(runs) >= 2, runs
        assert not [
            r
            for r in runs
            if r.status == JobRun.Status.INTERRUPTED
            and "lease expired" not in r.result
            and "ended while the job ran" not in r.result
        ], runs


@pytest.mark.redis
def test_two_celery_beats_and_two_workers_on_three_hosts_run_each_minute_once(kit):
    # A queue of its own on the broker: no other test's messages reach these workers.
    kit.configure(CRONJOBS=[hold("tick", 2, kit.folder)], CELERY_TASK_DEFAULT_QUEUE=f"multihost-{os.getpid()}")
    a, b, c = (kit.host(name) for name in ("hostA", "hostB", "hostC"))
    workers = [b.celery_worker("one"), c.celery_worker("two")]
    for worker in workers:
        worker.wait_for(" ready.")
    beats = [a.celery_beat(), b.celery_beat()]  # the second one by mistake (docs/deploy.md): harmless
    for beat in beats:
        beat.wait_for("beat: Starting")
    kit.wait_until(
        "two minutes of tick run to the end",
        lambda: len([r for r in kit.runs("tick") if r.status == JobRun.Status.SUCCEEDED]) >= 2,
    )
    runs = assert_each_minute_once(kit, "tick")
    assert all(r.trigger == "celery" and r.host in ("hostB", "hostC") for r in runs), runs
    for beat in beats:
        assert beat.has("Sending due task cronjob:tick (cronjobs.run_cronjob)"), beat.output
    sent = sum(beat.output.count("Sending due task cronjob:tick") for beat in beats)
    executed = sum(
        line.count("Task cronjobs.run_cronjob[") for w in workers for line in w.lines if " succeeded in " in line
    )
    assert executed >= sent - 2 and sent > len(runs), (sent, executed, runs)
