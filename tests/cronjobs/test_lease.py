"""The supervisor's side of the lease (cronjobs/supervisor.py): a renewal that takes a while never stops a
healthy job, and a job whose renewals fail is dead before its lease can expire, whatever
CRONJOBS_STOP_WAIT says. Multi-host cases: tests/multihost."""

import os
import time

import pytest
from django.db import DatabaseError

from cronjobs import runner, supervisor

JOBS = "tests.cronjobs.jobs"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def short_lease(settings, tmp_path):
    settings.CRONJOBS_LEASE_SECONDS = 0.5  # a lease lasts 1.5 s without renewal
    settings.CRONJOBS_STOP_WAIT = 5.0  # longer than the lease: a lost lease must not wait for it
    settings.CRONJOBS = [
        ("* * * * *", "tests.multihost.jobs.hold", [1.6]),
        ("* * * * *", f"{JOBS}.swallow_everything", [str(tmp_path / "marker")], {}, {"timeout": 60}),
    ]


def test_a_slow_renewal_does_not_stop_a_healthy_job(monkeypatch):
    """Found by the multi-host kit: each renewal opened a connection through the host's proxy (tens of
    milliseconds), and the watchdog stopped jobs one lease period after the last renewal had *ended*,
    before the next one could: `stopped because its lease was lost (no lease renewal succeeded for 1s)`."""
    renew = supervisor.renew_lease

    def slow_renewal(record):
        time.sleep(0.15)
        return renew(record)

    monkeypatch.setattr(supervisor, "renew_lease", slow_renewal)
    record = runner.run("hold")
    assert record.status == "succeeded", record.result


@pytest.mark.django_db(transaction=True)  # the supervisor closes the connection a renewal failed on
def test_a_job_whose_renewals_fail_is_killed_before_its_lease_expires(monkeypatch):
    def unreachable(record):
        raise DatabaseError("the database is cut off")

    monkeypatch.setattr(supervisor, "renew_lease", unreachable)
    record = runner.run("swallow_everything")  # ignores SIGTERM: only SIGKILL ends it
    assert record.status == "interrupted", record.result
    assert "stopped because its lease was lost (no lease renewal succeeded for" in record.result
    assert "was killed (SIGKILL)" in record.result
    # Killed and recorded before another host could close the run, not CRONJOBS_STOP_WAIT after SIGTERM.
    assert record.finished_at < record.lease_expires_at, (record.finished_at, record.lease_expires_at)


def test_a_live_supervisor_on_a_host_whose_clock_is_behind_is_alive(monkeypatch):
    """Found by the multi-host kit: on a host 90 s behind the database (libfaketime), `crontab work`'s own
    reaper closed its live run ("its supervising process ... ended while the job ran"): it read the
    process's start from /proc on the kernel's clock and corrected it by the offset this process measured
    on its own clock. A process's age needs no wall clock."""
    from django.utils import timezone

    from cronjobs import dbclock, reaper

    database_now = timezone.now()
    # This process's clock reads 90 s behind the database's (as under FAKETIME=-90s); /proc does not.
    monkeypatch.setattr(dbclock, "offset", lambda: -90.0)
    monkeypatch.setattr(dbclock, "now", lambda: database_now)
    assert reaper.process_alive(os.getpid(), database_now)
