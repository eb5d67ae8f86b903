"""/health/cron/'s schedule arithmetic is reused across snapshots while it holds: never a stale answer."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from cronjobs.health import _Timing
from cronjobs.registry import parse_cronjobs

SCHEDULES = ["* * * * *", "*/5 * * * *", "0 */12 * * *", "30 2 * * *", "0 9 * * 1-5", "15,45 * 1 * *", "0 0 29 2 *"]
START = datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # Berlin's spring-forward night ahead


def job(schedule, grace, zone):
    options = {"name": "j", **({"grace": grace} if grace is not None else {}), **({"timezone": zone} if zone else {})}
    (parsed,) = parse_cronjobs([(schedule, "tests.cronjobs.jobs.succeed", options)]).jobs
    return parsed


def answer(timing: _Timing) -> _Timing:
    return replace(timing, valid_from=_Timing.valid_from, valid_until=_Timing.valid_until)


@given(
    st.sampled_from(SCHEDULES),
    st.sampled_from([None, 30, 150, 7200]),
    st.sampled_from([None, "Europe/Berlin"]),
    st.integers(0, 3 * 24 * 3600),
    st.lists(st.one_of(st.integers(0, 90), st.integers(0, 4 * 3600)), min_size=1, max_size=60),
)
def test_a_cached_timing_is_the_one_computed_afresh_at_every_moment(schedule, grace, zone, start, steps):
    entry, cache = job(schedule, grace, zone), {}
    now = START + timedelta(seconds=start)
    for step in steps:  # time goes forward, as it does between health checks, by seconds or hours
        now += timedelta(seconds=step, microseconds=step % 7)
        assert answer(_Timing.cached(entry, now, cache)) == answer(_Timing.of(entry, now)), now
    now = START + timedelta(seconds=start - 1)  # and backwards (a test's clock): recomputed
    assert answer(_Timing.cached(entry, now, cache)) == answer(_Timing.of(entry, now))
