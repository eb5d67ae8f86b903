"""Which schedulers are alive: each `crontab work` and Celery beat process keeps a heartbeat row.

Every minute (and when it starts, stops or refuses a new CRONJOBS) a scheduler writes its row: host,
pid, route, last tick on the database's clock, a short hash of the CRONJOBS it fires, its clock's
offset, and the configuration error it is living with, if any. `crontab show`, the admin and
/health/cron/ read them: who fires the jobs, who runs an older CRONJOBS than this process's, whose
clock is off, and `no scheduler` when jobs are due and nothing alive fires them.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import timedelta

from cronjobs import dbclock, registry
from cronjobs.models import SchedulerBeat
from cronjobs.registry import get_registry

# A scheduler whose last tick is older than this is gone (it ticks every minute).
ALIVE_WITHIN = timedelta(seconds=150)


def cronjobs_version(cronjobs=None) -> str:
    """A short hash of a CRONJOBS value (default: settings.CRONJOBS, hashed once per registry)."""
    if cronjobs is None:
        return get_registry().version
    return registry.cronjobs_version(cronjobs)


class Heartbeat:
    """This process's heartbeat row."""

    def __init__(self, route: str, jobs: int, version: str | None = None):
        self.instance = secrets.token_hex(8)
        self.route, self.jobs = route, jobs
        self.version = version or cronjobs_version()

    def tick(self, *, config_error: str = "") -> None:
        SchedulerBeat.objects.update_or_create(
            instance=self.instance,
            defaults={
                "last_tick": dbclock.sql_now(),
                "config_error": config_error[:5000],
                "clock_offset": dbclock.offset(),
                "jobs": self.jobs,
                "cronjobs_version": self.version,
            },
            create_defaults={
                **dbclock.started_now(),
                "last_tick": dbclock.sql_now(),
                "route": self.route,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "cronjobs_version": self.version,
                "jobs": self.jobs,
                "clock_offset": dbclock.offset(),
                "config_error": config_error[:5000],
            },
        )

    def stopped(self) -> None:
        SchedulerBeat.objects.filter(instance=self.instance).update(
            stopped_at=dbclock.sql_now(), last_tick=dbclock.sql_now()
        )


def alive():
    """Schedulers that ticked recently and did not stop, newest first."""
    cutoff = dbclock.now() - ALIVE_WITHIN
    return list(SchedulerBeat.objects.filter(stopped_at__isnull=True, last_tick__gte=cutoff).order_by("-last_tick"))


def describe(beat: SchedulerBeat) -> str:
    """One line for `crontab show`, the admin and health: what, where, when it last ticked."""
    tick = beat.last_tick.isoformat(timespec="seconds")
    return (
        f"{beat.get_route_display()} on {beat.host} pid {beat.pid}, last tick {tick}, CRONJOBS {beat.cronjobs_version}"
    )


def problems(schedulers: list[SchedulerBeat] | None = None) -> list[tuple[str, str]]:
    """(kind, text) for schedulers that are alive but wrong: `configuration` (they refuse the CRONJOBS
    in their settings), `version` (they fire another CRONJOBS than this process's), `clock` (skew)."""
    schedulers = alive() if schedulers is None else schedulers
    mine = cronjobs_version()
    found = []
    for beat in schedulers:
        if beat.config_error:
            found.append(("configuration", f"{describe(beat)}: refuses the new CRONJOBS: {beat.config_error}"))
        elif beat.cronjobs_version != mine:
            found.append(("version", f"{describe(beat)}: fires another CRONJOBS than this process's ({mine})"))
        if dbclock.is_skewed(beat.clock_offset):
            found.append(("clock", dbclock.skew_text(beat.clock_offset, beat.host)))
    return found
