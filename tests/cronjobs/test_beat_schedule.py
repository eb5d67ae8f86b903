"""The beat schedule generated from CRONJOBS fires at exactly croniter's minutes, for every cron feature
the validator accepts."""

import pickle
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import HealthCheck, assume, given, note
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from cronjobs.beat import ENTRY_PREFIX, TASK_NAME, any_crontab, beat_schedule, celery_schedule, scheduled_minute
from cronjobs.registry import MACROS, parse_cronjobs, schedule_error

JOB = "tests.cronjobs.jobs.succeed"


def job_for(expression: str):
    registry = parse_cronjobs([(expression, JOB)])
    assert not registry.problems and not registry.jobs[0].problems, registry
    return registry.jobs[0]


def croniter_times(expression: str, start: datetime, zone: str, count: int = 10) -> list[datetime]:
    it = croniter(expression, start.astimezone(ZoneInfo(zone)))
    return [it.get_next(datetime).astimezone(UTC) for _ in range(count)]


def celery_times(schedule, start: datetime, count: int = 10) -> list[datetime]:
    """Celery's own answer: from `start`, ask the schedule how long until its next run, repeatedly."""
    times, moment = [], start
    for _ in range(count):
        schedule.nowfun = lambda moment=moment: moment
        moment = moment + schedule.remaining_estimate(moment)
        times.append(moment.astimezone(UTC))
    return times


def assert_same_fire_times(expression: str, start: datetime, zone: str = "UTC") -> None:
    schedule = celery_schedule(job_for(expression))
    assert celery_times(schedule, start) == croniter_times(MACROS.get(expression, expression), start, zone), expression


EXAMPLES = [
    "* * * * *",
    "*/5 * * * *",  # steps
    "0 */12 * * *",
    "0 2 * * 0",  # Sunday as 0
    "0 2 * * 7",  # Sunday as 7 (Celery refuses 7 itself)
    "0 8 * * *",
    "0 6 * * 1",  # generate_crm_report: Monday 06:00
    "30 3 * * *",
    "15 9-17 * * 1-5",  # ranges
    "0 9 * * mon-fri",  # weekday names
    "0 9 * * sat,sun",
    "0 0 * * 5-7",  # a range ending on Sunday-as-7
    "0,30 8,12,18 * * *",  # lists
    "5-50/15 1-23/3 * * *",  # range with step
    "0 0 1 jan,jul *",  # month names
    "0 12 1-7 * *",
    "0 0 1,15 * 1",  # day-of-month AND day-of-week given: cron fires on either
    "0 0 */2 * 1",
    "0 0 29 2 *",  # leap days only
    "0 0 31 * *",
    "@hourly",
    "@daily",
    "@midnight",
    "@weekly",
    "@monthly",
    "@yearly",
    "@annually",
]


@pytest.mark.parametrize("expression", EXAMPLES)
def test_each_cron_feature_fires_at_croniters_minutes(expression):
    assert schedule_error(expression) is None
    for start in (datetime(2025, 1, 1, tzinfo=UTC), datetime(2028, 2, 27, 23, 59, 30, tzinfo=UTC)):
        assert_same_fire_times(expression, start)


def test_schedules_are_read_in_the_projects_time_zone(settings):
    settings.TIME_ZONE = "Asia/Kolkata"  # +05:30, no DST
    for expression in ("0 6 * * 1", "30 */2 * * *", "0 0 1,15 * fri"):
        assert_same_fire_times(expression, datetime(2025, 3, 1, 12, 0, tzinfo=UTC), zone="Asia/Kolkata")
    first = celery_times(celery_schedule(job_for("0 6 * * 1")), datetime(2025, 3, 1, tzinfo=UTC), 1)[0]
    assert first == datetime(2025, 3, 3, 0, 30, tzinfo=UTC)  # Monday 06:00 in Kolkata


def _field(low: int, high: int, names: list[str] = ()):
    atom = st.integers(low, high).map(str)
    if names:
        atom = atom | st.sampled_from(names)
    single = st.one_of(
        st.just("*"),
        st.integers(1, high).map(lambda step: f"*/{step}"),
        atom,
        st.tuples(st.integers(low, high), st.integers(low, high)).map(lambda ab: f"{min(ab)}-{max(ab)}"),
        st.tuples(st.integers(low, high), st.integers(low, high), st.integers(1, high)).map(
            lambda abs_: f"{min(abs_[:2])}-{max(abs_[:2])}/{abs_[2]}"
        ),
    )
    return st.lists(single, min_size=1, max_size=3).map(",".join)


MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
expressions = st.one_of(
    st.sampled_from(sorted(MACROS)),
    st.tuples(_field(0, 59), _field(0, 23), _field(1, 31), _field(1, 12, MONTHS), _field(0, 7, DAYS)).map(" ".join),
)


@given(expression=expressions, start=st.datetimes(datetime(2000, 1, 1), datetime(2035, 12, 31)))
@hyp_settings(suppress_health_check=[HealthCheck.too_slow])
def test_generated_schedules_fire_at_croniters_minutes(expression, start):
    assume(schedule_error(expression) is None)
    start = start.replace(tzinfo=UTC)
    try:
        expected = croniter_times(MACROS.get(expression, expression), start, "UTC")
    except Exception:  # croniter finds no date (31 February): no schedule to compare
        assume(False)
    schedule = celery_schedule(job_for(expression))
    actual = celery_times(schedule, start)
    note(f"celery {actual}\ncroniter {expected}")
    assert actual == expected, expression


def test_1_march_after_a_leap_february():
    """croniter 6.0.0's get_next skipped 1 March here (gave 03-04); 6.2.4, pinned, does not."""
    start = datetime(2024, 2, 28, tzinfo=UTC)
    job = job_for("0 0 */3 * *")
    actual = celery_times(celery_schedule(job), start, 2)
    assert actual == [datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 4, tzinfo=UTC)]
    assert croniter.match("0 0 */3 * *", actual[0])
    assert job.next_run(start) == actual[0]  # what `show`, health and GraphQL report
    assert job.latest_run(actual[0] + timedelta(seconds=30)) == actual[0]  # what `work` uses


def test_beat_schedule_has_one_entry_per_enabled_job_with_its_task(settings):
    settings.CRONJOBS = [
        ("*/5 * * * *", JOB, {"name": "often"}),
        ("0 6 * * 1", JOB, {"name": "generate_crm_report"}),
        ("0 0 * * *", JOB, {"name": "off", "enabled": False}),
        ("0 0 1 * 1", JOB, {"name": "either_day"}),
    ]
    schedule = beat_schedule({"generate_crm_report": "crm.tasks.generate_crm_report"})
    assert sorted(schedule) == [ENTRY_PREFIX + n for n in ("either_day", "generate_crm_report", "often")]
    assert schedule["cronjob:often"]["task"] == TASK_NAME and schedule["cronjob:often"]["args"] == ("often",)
    report = schedule["cronjob:generate_crm_report"]
    assert report["task"] == "crm.tasks.generate_crm_report" and report["args"] == ()
    monday = celery_times(report["schedule"], datetime(2025, 6, 1, tzinfo=UTC), 2)  # a Sunday
    assert monday == [datetime(2025, 6, 2, 6, 0, tzinfo=UTC), datetime(2025, 6, 9, 6, 0, tzinfo=UTC)]
    assert isinstance(schedule["cronjob:either_day"]["schedule"], any_crontab)


def test_schedules_survive_beats_shelve(settings):
    settings.TIME_ZONE = "Europe/Paris"
    for expression in ("*/5 * * * *", "0 0 1 * 1"):
        schedule = celery_schedule(job_for(expression))
        copy = pickle.loads(pickle.dumps(schedule))  # noqa: S301 - our own bytes, as beat's shelve does
        start = datetime(2025, 5, 5, tzinfo=UTC)
        assert celery_times(copy, start) == celery_times(schedule, start)


def test_scheduled_minute_is_the_latest_minute_at_send_time(settings):
    settings.CRONJOBS = [("*/5 * * * *", JOB, {"name": "often"})]
    sent = datetime(2025, 5, 5, 12, 10, 0, 300_000, tzinfo=UTC)
    assert scheduled_minute("often", sent) == "2025-05-05T12:10:00+00:00"
    assert scheduled_minute("often", sent + timedelta(minutes=3)) == "2025-05-05T12:10:00+00:00"
