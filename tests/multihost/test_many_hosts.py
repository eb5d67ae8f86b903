"""Many machines, one clock (docs/faults.md, "Many machines"): the multi-host kit's cases, each asserted
on the run history. Hosts, proxies and clocks: tests/multihost/conftest.py."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest

from cronjobs import liveness
from cronjobs.models import JobRun, SchedulerBeat
from tests.multihost.conftest import LEASE, TTL, hold

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.multihost]

MINUTE = timedelta(minutes=1)


def ran(runs: list[JobRun]) -> list[JobRun]:
    """The runs that executed the job (not the recorded skips and misses)."""
    return [run for run in runs if run.status not in (JobRun.Status.SKIPPED, JobRun.Status.MISSED)]


def assert_each_minute_once(kit, job: str) -> list[JobRun]:
    """Every minute from the first to the last has exactly one row, and each row that ran the job ran it
    exactly once: every execution the job noted (its start, on the database's clock) falls inside one
    run's start..finish, and no run holds two. Returns the runs."""
    runs = kit.runs(job)
    minutes = [run.scheduled_for for run in runs]
    assert len(minutes) == len(set(minutes)), runs
    expected = [minutes[0] + n * MINUTE for n in range(int((minutes[-1] - minutes[0]) / MINUTE) + 1)]
    assert minutes == expected, f"minutes without a run, or off the minute: {minutes}"
    starts = [note for note in kit.executions() if note["what"] == "start"]
    held = {run.pk: [] for run in ran(runs)}
    for note in starts:
        owners = [
            run
            for run in ran(runs)
            if run.started_at.timestamp() <= note["at"]
            and (run.finished_at is None or note["at"] <= run.finished_at.timestamp() + 0.5)
        ]
        assert len(owners) == 1, (note, owners)
        held[owners[0].pk].append(note)
    assert all(len(notes) == 1 for notes in held.values()), held
    return runs


def test_three_crontab_work_hosts_run_each_minute_once(kit):
    kit.configure(CRONJOBS=[hold("tick", 2, kit.folder)])
    hosts = [kit.host(name) for name in ("hostA", "hostB", "hostC")]
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
    time.sleep(2 * LEASE)  # a few renewals
    assert state_of(kit.health(), "long") == "running"
    victim.kill()
    killed = time.monotonic()
    kit.wait_until("/health/cron/ says long is stuck", lambda: state_of(kit.health(), "long") == "stuck", every=0.05)
    stuck_after = time.monotonic() - killed
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
    # The next minute runs on a live host.
    following = kit.wait_until(
        "the next minute of long running elsewhere",
        lambda: JobRun.objects.filter(job_name="long", scheduled_for=dead.scheduled_for + MINUTE).first(),
    )
    assert following.host != victim.name and following.status in ("running", "succeeded"), following
    assert len(kit.runs("long")) == 2


def partitioned_run(kit, job: str):
    """hostA claims this minute of `job` and runs it; hostB and hostC (`crontab work`) find it claimed and
    keep reaping. Returns (hostA, its `crontab run` process, the run)."""
    a = kit.host("hostA")
    process = a.run_scheduled(job)
    run = kit.wait_until(f"hostA running {job}", lambda: (r := running(job)) and r.renewed_at and r)
    for name in ("hostB", "hostC"):
        kit.host(name).work().wait_for("already claimed by run #")
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
    assert [n["host"] for n in kit.executions() if n["what"] == "start"].count("hostA") == 1


def test_a_partitioned_host_stops_its_job_before_its_lease_expires_and_says_so_once_healed(kit):
    kit.configure(CRONJOBS=[hold("stranded", 120, kit.folder, timeout=150)])
    a, process, run = partitioned_run(kit, "stranded")
    a.proxy.cut()
    closed = closed_by_another_host(kit, run)
    # The job was stopped on hostA (its supervisor could not renew the lease) before anyone closed the run:
    # no live run was closed.
    ended = kit.wait_until("the job's end noted", lambda: [n for n in kit.executions() if n["what"] != "start"])
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
        assert (owner.host, owner.status, owner.late_status) == (name, "succeeded", ""), owner
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
    assert "clock" not in kit.hosts["hostL1"].output()
    clock_problems = [text for kind, text in liveness.problems() if kind == "clock"]
    assert len(clock_problems) == 2 and any("hostL2's clock is" in t for t in clock_problems), clock_problems


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
