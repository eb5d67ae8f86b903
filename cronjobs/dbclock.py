"""The database's clock, the one clock hosts share: this process's offset from it, and what a skew means.

Every time the engine compares across hosts (claims, starts, finishes, leases, the reaper's "now",
scheduler ticks) is the database server's: statements write `Now()` where they can, and where a time
must be known before a statement (the minute a scheduled run claims), it is this process's clock
corrected by its measured offset. The offset is measured with one statement and kept for
REFRESH_SECONDS; every claim measures it again for free (the insert returns the database's start time).

A host whose clock is off by more than CRONJOBS_CLOCK_SKEW_WARN is reported (a warning log line, the
offset recorded on each run it claims, a `clock` problem on /health/cron/, a line in `crontab show`);
beyond CRONJOBS_CLOCK_SKEW_MAX it refuses to claim (ClockSkewError). Correctness never depends on
NTP: only timestamps' readability does.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import DateTimeField, ExpressionWrapper, Value
from django.db.models.functions import Now
from django.db.models.sql import Query
from django.utils import timezone

from cronjobs import conf

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 60.0  # a long-lived process measures again after this long


class ClockSkewError(Exception):
    """This host's clock is too far from the database's to claim runs (CRONJOBS_CLOCK_SKEW_MAX)."""


@dataclass(frozen=True)
class Reading:
    offset: float  # seconds this host's clock is ahead of the database's (negative: behind)
    uncertainty: float  # half the round trip of the measuring statement
    monotonic: float  # time.monotonic() when measured


_reading: Reading | None = None
_warned_offset: float | None = None
_local_only = False  # tests that freeze this process's clock: take it as the database's (local_clock)


def _clock_is_local() -> bool:
    """True where the database's clock is this process's: inside local_clock(), and on SQLite, which
    runs inside each process on this machine's clock (and stores times as text, which must be written
    in Django's one format to compare right)."""
    return _local_only or connection.vendor == "sqlite"


def sql_now():
    """The database's now for a statement to write or compare with: `Now()` on a database server,
    this process's clock as a value where that is the database's (_clock_is_local)."""
    if _clock_is_local():
        return Value(now(), output_field=DateTimeField())
    return Now()


def sql_now_plus(delta: timedelta):
    """The database's now plus `delta`, for a statement (a lease's expiry)."""
    return ExpressionWrapper(sql_now() + delta, output_field=DateTimeField())


def started_now() -> dict:
    """Fields for a new row: none on a database server (the start is the column's default, now(), read
    back with the insert), the start as this process's clock where that is the database's."""
    return {"started_at": now()} if _clock_is_local() else {}


def now_sql() -> tuple[str, list]:
    """`SELECT`-able SQL for the database's current time, as Django's Now() writes it for this vendor."""
    query = Query(None)
    return query.get_compiler(connection=connection).compile(Now())


def _as_utc(value) -> datetime:
    if isinstance(value, str):  # SQLite: 'YYYY-MM-DD HH:MM:SS.fff', UTC
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def measure() -> Reading:
    """Read the database's clock once (one statement) and keep the offset."""
    sql, params = now_sql()
    with connection.cursor() as cursor:
        before = time.time()
        cursor.execute(f"SELECT {sql}", params)
        database_time = _as_utc(cursor.fetchone()[0])
        after = time.time()
    return calibrate(before, after, database_time)


def calibrate(before: float, after: float, database_time: datetime) -> Reading:
    """Take a database time read between local times `before` and `after` (time.time()) as the offset."""
    global _reading
    if _clock_is_local():
        return reading()
    middle = (before + after) / 2
    _reading = Reading(middle - _as_utc(database_time).timestamp(), (after - before) / 2, time.monotonic())
    _report(_reading.offset)
    return _reading


def reading() -> Reading:
    """The current offset, measured again when older than REFRESH_SECONDS."""
    if _clock_is_local():
        return Reading(0.0, 0.0, time.monotonic())
    if _reading is None or time.monotonic() - _reading.monotonic > REFRESH_SECONDS:
        return measure()
    return _reading


def offset() -> float:
    return reading().offset


def now() -> datetime:
    """The database's time now (this host's clock corrected by its measured offset), aware, UTC."""
    if _clock_is_local():
        return timezone.now()
    return datetime.fromtimestamp(time.time() - offset(), tz=UTC)


@contextlib.contextmanager
def local_clock() -> Iterator[None]:
    """Within, this process's clock stands for the database's (no measuring): for tests that freeze or
    move this process's clock (time_machine), which the database server's cannot follow."""
    global _local_only
    previous, _local_only = _local_only, True
    try:
        yield
    finally:
        _local_only = previous


def forget() -> None:
    """Drop the kept reading (tests; a forked child measures its own)."""
    global _reading, _warned_offset
    _reading = _warned_offset = None


def skew_text(offset_seconds: float, host: str | None = None) -> str:
    direction = "ahead of" if offset_seconds > 0 else "behind"
    return f"{host or socket.gethostname()}'s clock is {abs(offset_seconds):.1f}s {direction} the database's"


def is_skewed(offset_seconds: float | None) -> bool:
    return offset_seconds is not None and abs(offset_seconds) > float(conf.get("CRONJOBS_CLOCK_SKEW_WARN"))


def check_claim_allowed() -> float:
    """The offset, or ClockSkewError when it is beyond CRONJOBS_CLOCK_SKEW_MAX (nothing may be claimed)."""
    value = offset()
    limit = float(conf.get("CRONJOBS_CLOCK_SKEW_MAX"))
    if abs(value) > limit:
        raise ClockSkewError(
            f"{skew_text(value)} (more than CRONJOBS_CLOCK_SKEW_MAX = {limit:g}s): this host claims no runs "
            "until its clock is corrected (NTP)"
        )
    return value


def _report(offset_seconds: float) -> None:
    """One warning per process when the skew first crosses the threshold (and again if it grows by 1 s).
    Beyond CRONJOBS_CLOCK_SKEW_MAX the refusal to claim (ClockSkewError) says it, in one line."""
    global _warned_offset
    if not is_skewed(offset_seconds) or abs(offset_seconds) > float(conf.get("CRONJOBS_CLOCK_SKEW_MAX")):
        return
    if _warned_offset is None or abs(offset_seconds - _warned_offset) > 1.0:
        _warned_offset = offset_seconds
        threshold = conf.get("CRONJOBS_CLOCK_SKEW_WARN")
        logger.warning("cronjobs: %s (CRONJOBS_CLOCK_SKEW_WARN = %ss)", skew_text(offset_seconds), threshold)
