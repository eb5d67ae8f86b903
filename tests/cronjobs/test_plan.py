"""`crontab plan` (issue 27): the runs that will happen, an outage, a CRONJOBS change, and the test helper.

The plan is computed by the engine's own code, so these tests pin it to the engine: it must equal what the
scheduler's due_slots fires minute by minute under a controlled clock, and the runner's grace rule.
"""

import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from cronjobs import plan, runner
from cronjobs.models import JobRun
from cronjobs.registry import JobConfigError, get_job, get_registry
from cronjobs.scheduler import due_slots
from cronjobs.testing import planned_runs
from tests.clock import travel
from tests.cronjobs.conftest import ROOT, clean_env

JOBS = "tests.cronjobs.jobs"
ENTRIES = [
    ("30 2 * * *", f"{JOBS}.succeed", {"name": "nightly", "timezone": "Europe/Berlin"}),
    ("* * * * *", f"{JOBS}.succeed", {"name": "minutely", "timezone": "Europe/Berlin"}),
    ("*/15 * * * *", f"{JOBS}.succeed", {"name": "quarterly", "jitter": 30, "grace": 60}),
    ("0 2 * * 0", f"{JOBS}.succeed", {"name": "sunday", "timezone": "Europe/Berlin"}),
    ("* * * * *", f"{JOBS}.succeed", {"name": "off", "enabled": False}),
    ("*/30 * * * *", f"{JOBS}.succeed", {"name": "half_hourly", "timezone": "Europe/Berlin", "jitter": 59}),
]
QUARTERLY_OFFSET = 29  # Job.start_offset of "quarterly" with jitter 30: derived from the name, never changes


@pytest.fixture(autouse=True)
def cronjobs(settings):
    settings.TIME_ZONE = "UTC"
    settings.CRONJOBS = ENTRIES


def utc(*parts):
    return datetime(*parts, tzinfo=UTC)


def plan_text(*args) -> str:
    out = io.StringIO()
    call_command("crontab", "plan", *args, stdout=out)
    return out.getvalue()


def plan_json(*args):
    return json.loads(plan_text(*args, "--format", "json"))


def refused(*args) -> str:
    """The one-line message of a plan refused as bad input (exit 2)."""
    with pytest.raises(CommandError) as caught:
        plan_text(*args)
    assert caught.value.returncode == 2
    message = str(caught.value)
    assert "\n" not in message
    return message


# --- the acceptance: the DST days of 2026 in Europe/Berlin --------------------------------------------
def test_spring_forward_a_0230_job_runs_once_at_0300_cest():
    runs = plan_json("--from", "2026-03-28T23:00Z", "--to", "2026-03-29T23:00Z", "--job", "nightly")
    assert runs == [
        {
            "job": "nightly",
            "zone": "Europe/Berlin",
            "minute": "2026-03-29T03:00:00+02:00",
            "minute_utc": "2026-03-29T01:00:00+00:00",
            "start": "2026-03-29T03:00:00+02:00",
            "start_offset": 0,
        }
    ]
    text = plan_text("--from", "2026-03-28T23:00Z", "--to", "2026-03-29T23:00Z", "--job", "nightly")
    assert text.splitlines()[1:] == ["  2026-03-29 03:00 CEST (01:00 UTC)  nightly"]


def test_fall_back_a_0230_job_runs_once_at_the_first_0230():
    runs = plan_json("--from", "2026-10-24T22:00Z", "--to", "2026-10-25T23:00Z", "--job", "nightly")
    assert [(run["minute"], run["minute_utc"]) for run in runs] == [
        ("2026-10-25T02:30:00+02:00", "2026-10-25T00:30:00+00:00")
    ]


def test_an_every_minute_job_runs_in_both_passes_of_the_repeated_hour():
    runs = plan_json("--from", "2026-10-25T00:28Z", "--to", "2026-10-25T01:32Z", "--job", "minutely")
    minutes = [run["minute"] for run in runs]
    assert len(minutes) == 64 and minutes[:2] == ["2026-10-25T02:28:00+02:00", "2026-10-25T02:29:00+02:00"]
    assert minutes[-3:] == ["2026-10-25T02:29:00+01:00", "2026-10-25T02:30:00+01:00", "2026-10-25T02:31:00+01:00"]


def test_jitter_gives_the_exact_start_second():
    assert get_job("quarterly").start_offset == QUARTERLY_OFFSET
    runs = plan_json("--from", "2026-03-01T10:00Z", "--to", "2026-03-01T10:30Z", "--job", "quarterly")
    assert [(run["minute_utc"], run["start"], run["start_offset"]) for run in runs] == [
        ("2026-03-01T10:00:00+00:00", "2026-03-01T10:00:29+00:00", 29),
        ("2026-03-01T10:15:00+00:00", "2026-03-01T10:15:29+00:00", 29),
    ]
    text = plan_text("--from", "2026-03-01T10:00Z", "--to", "2026-03-01T10:16Z", "--job", "quarterly")
    assert text.splitlines() == [
        "2 runs from 2026-03-01 10:00 UTC (10:00 UTC) to 2026-03-01 10:16 UTC (10:16 UTC):",
        "  2026-03-01 10:00 UTC (10:00 UTC)  quarterly  starts 10:00:29 (jitter 30 s: +29 s)",
        "  2026-03-01 10:15 UTC (10:15 UTC)  quarterly  starts 10:15:29 (jitter 30 s: +29 s)",
    ]


def test_the_window_is_half_open_and_runs_are_in_start_order():
    runs = plan_json("--from", "2026-03-01T10:15Z", "--to", "2026-03-01T10:17Z", "--job", "minutely", "quarterly")
    assert [(run["job"], run["start"]) for run in runs] == [
        ("minutely", "2026-03-01T11:15:00+01:00"),
        ("quarterly", "2026-03-01T10:15:29+00:00"),
        ("minutely", "2026-03-01T11:16:00+01:00"),
    ]


def test_disabled_jobs_are_not_planned_and_text_says_so():
    assert plan_json("--from", "2026-03-01T10:00Z", "--to", "2026-03-01T10:05Z", "--job", "off") == []
    text = plan_text("--from", "2026-03-01T10:00Z", "--to", "2026-03-01T10:05Z", "--job", "off")
    assert text.splitlines()[-1] == "Not planned (enabled: False): off"


def test_naive_times_are_read_in_time_zone_and_a_skipped_one_is_explained(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    text = plan_text("--from", "2026-03-29T02:00", "--to", "2026-03-29T04:00", "--job", "nightly", "sunday")
    assert text.splitlines() == [
        "Note: 2026-03-29T02:00 does not exist in Europe/Berlin (the clocks skip it): read as 2026-03-29 03:00 CEST "
        "(01:00 UTC)",
        "2 runs from 2026-03-29 03:00 CEST (01:00 UTC) to 2026-03-29 04:00 CEST (02:00 UTC):",
        "  2026-03-29 03:00 CEST (01:00 UTC)  nightly",
        "  2026-03-29 03:00 CEST (01:00 UTC)  sunday",
    ]


def test_the_default_window_is_the_next_24_hours():
    with time_machine.travel(utc(2026, 3, 1, 10, 0, 30), tick=False):
        runs = plan_json("--job", "nightly", "quarterly")
        default_to = plan_json("--from", "2026-03-01T10:00:30Z", "--job", "nightly", "quarterly")
    assert runs == default_to
    assert runs[0]["minute_utc"] == "2026-03-01T10:15:00+00:00"  # 10:00 began before now
    assert runs[-1]["minute_utc"] == "2026-03-02T10:00:00+00:00" and len(runs) == 97


# --- the plan is the engine's --------------------------------------------------------------------------
def fired_by_the_scheduler(start: datetime, end: datetime) -> list[tuple[str, str, str]]:
    """What `crontab work`'s own loop starts, its clock stepping one second at a time from `start` to
    `end` (the database's clock stands at the same moment): each run's job, minute and the second the
    scheduler launched it (its jitter offset into the minute). Runs are launched by a stand-in that
    records them (the processes are the slow tier's business), and the loop claims them for real."""
    from cronjobs.scheduler import Scheduler

    jobs = get_registry().jobs
    launched = []

    def launch(job, record):
        launched.append((job.name, record.scheduled_for.astimezone(UTC).isoformat(), now[0].isoformat()))
        JobRun.objects.filter(pk=record.pk).update(status="succeeded", finished_at=record.started_at)
        return 100000 + len(launched)

    now = [start - timedelta(seconds=1)]
    sched = Scheduler(
        jobs=jobs, out=io.StringIO(), clock=lambda: now[0], launch=launch, collect=lambda pids: [], catch_up=0
    )
    with travel(now[0], tick=False) as traveller:
        while now[0] < end:
            sched.tick()
            now[0] += timedelta(seconds=1)
            traveller.move_to(now[0])
            sched.running.clear()  # every run ends at once: the plan is about when they start
    return sorted(launched, key=lambda run: (run[1], run[0]))


@pytest.mark.parametrize(
    ("start", "end"),
    [(utc(2026, 3, 28, 22), utc(2026, 3, 29, 4)), (utc(2026, 10, 24, 22), utc(2026, 10, 25, 4))],
    ids=["spring-forward", "fall-back"],
)
@pytest.mark.django_db
def test_the_plan_is_what_the_scheduler_tick_fires_minute_by_minute(start, end):
    planned = [
        (run["job"], datetime.fromisoformat(run["minute_utc"]).isoformat(), _utc(run["start"]))
        for run in planned_runs(start, end)
    ]
    fired = fired_by_the_scheduler(start, end)
    assert sorted(planned, key=lambda run: (run[1], run[0])) == fired
    assert {name for name, *_ in fired} == {"nightly", "minutely", "quarterly", "sunday", "half_hourly"}  # not "off"


def _utc(text: str) -> str:
    return datetime.fromisoformat(text).astimezone(UTC).isoformat()


def test_due_minutes_are_next_run_s_and_each_is_due():
    job = get_job("nightly")
    minutes = plan.due_minutes(job, utc(2026, 3, 27), utc(2026, 3, 31))
    assert [m.isoformat() for m in minutes] == [
        "2026-03-27T02:30:00+01:00",
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]
    assert all(job.is_due(minute) and minute.tzinfo == job.zone for minute in minutes)
    assert plan.due_minutes(job, minutes[0], minutes[1]) == minutes[:1]  # [start, end)


# --- the helper ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ("2026-03-28T22:00Z", "2026-03-29T04:00Z", None),
        ("2026-10-25T00:00", "2026-10-25T04:00", ["nightly", "quarterly"]),
        ("2026-03-01T10:00:30+01:00", "2026-03-01T12:00:00+01:00", ["quarterly"]),
    ],
)
def test_the_helper_returns_what_the_command_prints_as_json(args):
    start, end, jobs = args
    command = ["--from", start, "--to", end, *(["--job", *jobs] if jobs else [])]
    assert planned_runs(start, end, jobs=jobs) == plan_json(*command)
    assert planned_runs(datetime.fromisoformat(start), datetime.fromisoformat(end), jobs=jobs) == plan_json(*command)


def test_the_helper_refuses_what_the_command_refuses(settings):
    with pytest.raises(plan.PlanError, match="'yesterday' is not an ISO 8601 time"):
        planned_runs("yesterday", "2026-03-01T00:00")
    with pytest.raises(plan.PlanError, match="no job named 'nope'"):
        planned_runs("2026-03-01T00:00", "2026-03-02T00:00", jobs=["nope"])
    with pytest.raises(plan.PlanError, match="is after end"):
        planned_runs("2026-03-02T00:00", "2026-03-01T00:00")
    settings.CRONJOBS = [("61 * * * *", f"{JOBS}.succeed")]
    with pytest.raises(JobConfigError, match="invalid schedule"):
        planned_runs("2026-03-01T00:00", "2026-03-02T00:00")


# --- --outage ----------------------------------------------------------------------------------------------
def effects(*args):
    """(job, fired minute (UTC) or None, recorded missed, (first, last, count) of the gap or None) per job."""
    result = []
    for effect in plan_json("--outage", *args):
        fired, gap = effect["fired"], effect["gap"]
        result.append(
            (
                effect["job"],
                fired and fired["minute_utc"][11:16],
                fired and fired["missed"],
                gap and (gap["first_utc"][11:16], gap["last_utc"][11:16], gap["count"]),
            )
        )
    return result


def test_outage_of_five_minutes_fires_the_latest_and_records_the_rest_as_one_gap():
    assert effects("2026-03-02T10:00Z..2026-03-02T10:05Z", "--job", "minutely") == [
        ("minutely", "10:04", False, ("10:00", "10:03", 4))
    ]
    # Starting 30 s into 10:05: that minute began in the outage too, and is the one fired.
    assert effects("2026-03-02T10:00Z..2026-03-02T10:05:30Z", "--job", "minutely") == [
        ("minutely", "10:05", False, ("10:00", "10:04", 5))
    ]


def test_outage_a_latest_minute_already_past_its_start_limit_is_not_fired_and_joins_the_gap():
    [effect] = plan_json("--outage", "2026-03-02T10:00Z..2026-03-02T10:03Z", "--job", "quarterly")
    assert effect["fired"] is None
    assert (effect["gap"]["first_utc"], effect["gap"]["count"]) == ("2026-03-02T10:00:00+00:00", 1)
    assert effect["never_runs"] == ["2026-03-02T10:00:00+00:00"]
    text = plan_text("--outage", "2026-03-02T10:00Z..2026-03-02T10:03Z", "--job", "quarterly")
    assert text.splitlines()[2:4] == [
        "  quarterly  [*/15 * * * *]",
        "    fires on start:   nothing (its latest due minute is 180 s old: past its start limit, 60 s)",
    ]


def test_outage_a_latest_minute_within_its_start_limit_is_fired_on_start():
    [effect] = plan_json("--outage", "2026-03-02T10:00Z..2026-03-02T10:00:40Z", "--job", "quarterly")
    assert effect["fired"]["minute_utc"] == "2026-03-02T10:00:00+00:00"
    assert (effect["fired"]["late"], effect["fired"]["missed"], effect["gap"]) == (40.0, False, None)


def test_outage_catch_up_comes_from_the_setting_or_the_flag(settings):
    window = "2026-03-02T10:00Z..2026-03-02T10:15:50Z"
    # 10:15 is 50 s old at 10:15:50: within its grace (60 s) and the default catch-up (300 s): fired
    assert effects(window, "--job", "quarterly") == [("quarterly", "10:15", False, ("10:00", "10:00", 1))]
    settings.CRONJOBS_WORK_CATCH_UP = 49
    assert effects(window, "--job", "quarterly") == [("quarterly", None, None, ("10:00", "10:15", 2))]
    assert effects(window, "--job", "quarterly", "--catch-up", "50") == [
        ("quarterly", "10:15", False, ("10:00", "10:00", 1))
    ]


BERLIN_SPRING_OUTAGE = [
    {
        "job": "nightly",
        "zone": "Europe/Berlin",
        "fired": None,
        "gap": {
            "first": "2026-03-29T03:00:00+02:00",
            "first_utc": "2026-03-29T01:00:00+00:00",
            "last": "2026-03-29T03:00:00+02:00",
            "last_utc": "2026-03-29T01:00:00+00:00",
            "count": 1,
        },
        "never_runs": ["2026-03-29T03:00:00+02:00"],
    },
    {
        "job": "minutely",
        "zone": "Europe/Berlin",
        "fired": {
            "job": "minutely",
            "zone": "Europe/Berlin",
            "minute": "2026-03-29T03:59:00+02:00",
            "minute_utc": "2026-03-29T01:59:00+00:00",
            "start": "2026-03-29T03:59:00+02:00",
            "start_offset": 0,
            "late": 60.0,
            "missed": False,
        },
        "gap": {
            "first": "2026-03-29T03:00:00+02:00",
            "first_utc": "2026-03-29T01:00:00+00:00",
            "last": "2026-03-29T03:58:00+02:00",
            "last_utc": "2026-03-29T01:58:00+00:00",
            "count": 59,
        },
        "never_runs": [f"2026-03-29T03:{minute:02}:00+02:00" for minute in range(59)],
    },
    {
        "job": "quarterly",
        "zone": "Europe/Berlin",
        "fired": None,
        "gap": {
            "first": "2026-03-29T03:00:00+02:00",
            "first_utc": "2026-03-29T01:00:00+00:00",
            "last": "2026-03-29T03:45:00+02:00",
            "last_utc": "2026-03-29T01:45:00+00:00",
            "count": 4,
        },
        "never_runs": [f"2026-03-29T03:{minute:02}:00+02:00" for minute in (0, 15, 30, 45)],
    },
    {
        "job": "sunday",
        "zone": "Europe/Berlin",
        "fired": None,
        "gap": {
            "first": "2026-03-29T03:00:00+02:00",
            "first_utc": "2026-03-29T01:00:00+00:00",
            "last": "2026-03-29T03:00:00+02:00",
            "last_utc": "2026-03-29T01:00:00+00:00",
            "count": 1,
        },
        "never_runs": ["2026-03-29T03:00:00+02:00"],
    },
    {
        "job": "half_hourly",
        "zone": "Europe/Berlin",
        "fired": None,
        "gap": {
            "first": "2026-03-29T03:00:00+02:00",
            "first_utc": "2026-03-29T01:00:00+00:00",
            "last": "2026-03-29T03:30:00+02:00",
            "last_utc": "2026-03-29T01:30:00+00:00",
            "count": 2,
        },
        "never_runs": ["2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"],
    },
]


def test_outage_from_0200_to_0400_on_the_spring_forward_day(settings):
    """02:00 does not exist that night: the outage is the one real hour from 03:00 CEST to 04:00 CEST."""
    settings.TIME_ZONE = "Europe/Berlin"
    assert plan_json("--outage", "2026-03-29T02:00..2026-03-29T04:00") == BERLIN_SPRING_OUTAGE
    text = plan_text("--outage", "2026-03-29T02:00..2026-03-29T04:00", "--job", "nightly", "minutely")
    assert text.splitlines() == [
        "Note: 2026-03-29T02:00 does not exist in Europe/Berlin (the clocks skip it): read as 2026-03-29 03:00 CEST "
        "(01:00 UTC)",
        "Every scheduler down from 2026-03-29 03:00 CEST (01:00 UTC) to 2026-03-29 04:00 CEST (02:00 UTC).",
        "`crontab work` starting then fires each job's latest due minute of the outage if at most 300 s old "
        "and not past its start limit:",
        "  nightly  [30 2 * * *]  Europe/Berlin",
        "    fires on start:   nothing (its latest due minute is 3600 s old: past the catch-up, 300 s)",
        "    recorded missed:  2026-03-29 03:00 CEST (01:00 UTC): 1 minute, one row",
        "    never runs:       1 minute",
        "  minutely  [* * * * *]  Europe/Berlin",
        "    fires on start:   2026-03-29 03:59 CEST (01:59 UTC), 60 s after its minute: runs",
        "    recorded missed:  2026-03-29 03:00 CEST (01:00 UTC) .. 2026-03-29 03:58 CEST (01:58 UTC): "
        "59 minutes, one row",
        "    never runs:       59 minutes",
    ]


def test_outage_from_0200_to_0400_on_the_fall_back_day(settings):
    """02:00 happens twice: the outage runs from the first 02:00 (CEST) to 04:00 CET, three real hours."""
    settings.TIME_ZONE = "Europe/Berlin"
    assert effects("2026-10-25T02:00..2026-10-25T04:00") == [
        ("nightly", None, None, ("00:30", "00:30", 1)),  # the first 02:30, once
        ("minutely", "02:59", False, ("00:00", "02:58", 179)),  # both passes of 02:xx
        ("quarterly", None, None, ("00:00", "02:45", 12)),
        ("sunday", None, None, ("00:00", "00:00", 1)),  # the first 02:00, once
        ("half_hourly", None, None, ("00:00", "02:30", 6)),  # both passes of 02:00 and 02:30
    ]
    assert plan_text("--outage", "2026-10-25T02:00..2026-10-25T04:00").startswith(
        "Note: 2026-10-25T02:00 happens twice in Europe/Berlin: read as the first, 2026-10-25 02:00 CEST (00:00 UTC)\n"
    )


def test_outage_lists_only_jobs_with_a_due_minute_and_names_the_others():
    assert effects("2026-03-02T10:01Z..2026-03-02T10:02Z") == [("minutely", "10:01", False, None)]
    text = plan_text("--outage", "2026-03-02T10:01Z..2026-03-02T10:02Z")
    assert text.splitlines()[-1] == "No due minute in the outage: nightly, quarterly, sunday, half_hourly"


def test_outage_fires_what_due_slots_fires_on_waking():
    """For a start inside a minute, the fired minutes are due_slots' at that moment (the catch-up rule)."""
    jobs = get_registry().jobs
    start, end = utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 47, 30)
    for catch_up in (timedelta(seconds=100), timedelta(seconds=300), timedelta(seconds=1000)):
        fired = [(e.job.name, e.fired) for e in plan.outage(jobs, start, end, catch_up) if e.fired]
        woken = [(job.name, slot) for job, slot in due_slots(jobs, start - timedelta(microseconds=1), end, catch_up)]
        assert fired == woken


@pytest.mark.django_db
def test_outage_grace_rule_is_the_runners():
    """late_missed agrees with what cronjobs.runner records for a scheduled run started that late."""
    job = get_job("quarterly")  # grace 60
    current = timezone.now().replace(second=0, microsecond=0)
    for slot, late_expected in ((current, False), (current - timedelta(minutes=2), True)):
        record = runner.run(job, scheduled_for=slot, trigger="work")
        assert plan.late_missed(job, slot, timezone.now()) is late_expected
        assert (record.status == "missed") is late_expected, record.result


# --- --against ---------------------------------------------------------------------------------------------
def test_against_a_file_lists_runs_added_removed_and_moved(tmp_path):
    other = tmp_path / "old_cronjobs.py"
    other.write_text(
        "CRONJOBS = [\n"
        f"    ('30 3 * * *', '{JOBS}.succeed', {{'name': 'nightly', 'timezone': 'Europe/Berlin'}}),\n"
        f"    ('0 3 * * *', '{JOBS}.succeed', {{'name': 'gone'}}),\n"
        f"    ('*/15 * * * *', '{JOBS}.succeed', {{'name': 'quarterly'}}),\n"
        "]\n"
    )
    args = ["--from", "2026-10-24T23:00Z", "--to", "2026-10-25T03:30Z", "--against", str(other)]
    changes = plan_json(*args, "--job", "nightly", "gone", "sunday")
    assert [run["minute_utc"] for run in changes["added"]] == ["2026-10-25T00:00:00+00:00"]
    assert [run["job"] for run in changes["added"]] == ["sunday"]
    assert [(run["job"], run["minute_utc"]) for run in changes["removed"]] == [("gone", "2026-10-25T03:00:00+00:00")]
    assert [(m["job"], m["from"]["minute"], m["to"]["minute"]) for m in changes["moved"]] == [
        ("nightly", "2026-10-25T03:30:00+01:00", "2026-10-25T02:30:00+02:00")
    ]
    assert plan_text(*args, "--job", "nightly", "gone", "sunday").splitlines() == [
        f"Runs from 2026-10-24 23:00 UTC (23:00 UTC) to 2026-10-25 03:30 UTC (03:30 UTC), {other} -> this CRONJOBS: "
        "1 added, 1 removed, 1 moved",
        "  + 2026-10-25 02:00 CEST (00:00 UTC)  sunday",
        "  - 2026-10-25 03:00 UTC (03:00 UTC)  gone",
        "  ~ nightly: 2026-10-25 03:30 CET (02:30 UTC) -> 2026-10-25 02:30 CEST (00:30 UTC)",
    ]
    # jitter moves each start by the job's offset; the minutes stay
    jitter = plan_json(
        "--from", "2026-10-25T00:00Z", "--to", "2026-10-25T00:30Z", "--against", str(other), "--job", "quarterly"
    )
    assert (jitter["added"], jitter["removed"]) == ([], [])
    assert [(m["from"]["start"], m["to"]["start"]) for m in jitter["moved"]] == [
        ("2026-10-25T00:00:00+00:00", "2026-10-25T00:00:29+00:00"),
        ("2026-10-25T00:15:00+00:00", "2026-10-25T00:15:29+00:00"),
    ]


def test_against_a_settings_module_reads_its_schedules_in_its_own_zone(settings):
    settings.CRONJOBS = [("0 22 * * *", f"{JOBS}.succeed", {"name": "evening"})]  # 22:00 UTC here
    changes = plan_json(
        "--from", "2026-10-24T03:00Z", "--to", "2026-10-26T00:00Z", "--against", "tests.cronjobs.plan_other_settings"
    )
    assert changes["removed"] == []
    assert [(m["from"]["minute"], m["to"]["minute"]) for m in changes["moved"]] == [
        ("2026-10-24T22:00:00-04:00", "2026-10-24T22:00:00+00:00")  # 22:00 New York is 02:00 UTC
    ]
    assert [run["minute"] for run in changes["added"]] == ["2026-10-25T22:00:00+00:00"]


def test_against_the_same_cronjobs_has_no_changes(tmp_path):
    same = tmp_path / "same.py"
    same.write_text(f"CRONJOBS = {ENTRIES!r}\n")
    args = ["--from", "2026-10-25T00:00Z", "--to", "2026-10-25T04:00Z", "--against", str(same)]
    assert plan_json(*args) == {"added": [], "removed": [], "moved": []}
    assert plan_text(*args).splitlines()[0].endswith("-> this CRONJOBS: 0 added, 0 removed, 0 moved")


# --- bad input: one line, exit 2 ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--job", "nope"],
            "--job: no job named 'nope' in CRONJOBS (known: nightly, minutely, quarterly, sunday, off, half_hourly)",
        ),
        (["--from", "yesterday"], "--from 'yesterday' is not an ISO 8601 time"),
        (["--to", "2026-13-01"], "--to '2026-13-01' is not an ISO 8601 time"),
        (
            ["--from", "2026-03-02T00:00Z", "--to", "2026-03-01T00:00Z"],
            "--from 2026-03-02 00:00 UTC (00:00 UTC) is after",
        ),
        (["--to", "2020-01-01T00:00Z"], "now (the default --from) "),
        (["--from", "2026-01-01T00:00Z", "--to", "2027-01-03T00:00Z"], "longer than 366 days: too large to list"),
        (["--from", "2026-01-01T00:00Z", "--to", "2026-01-08T00:00Z"], "more than 10000 runs from 2026-01-01"),
        (["--outage", "2026-03-01T00:00Z"], "--outage '2026-03-01T00:00Z': expected FROM..TO"),
        (["--outage", "2026-03-01T00:00Z.."], "expected FROM..TO"),
        (["--outage", "x..2026-03-01T00:00Z"], "--outage FROM 'x' is not an ISO 8601 time"),
        (["--outage", "2026-03-01T00:00Z..04:00"], "--outage TO '04:00' is not an ISO 8601 time"),
        (
            ["--outage", "2026-03-02T00:00Z..2026-03-01T00:00Z"],
            "--outage FROM 2026-03-02 00:00 UTC (00:00 UTC) is after TO",
        ),
        (["--outage", "2026-01-01T00:00Z..2026-01-01T02:00Z"], "more than 100 runs from 2026-01-01 00:00 UTC"),
        (["--outage", "2026-03-01T00:00Z..2026-03-01T01:00Z", "--from", "2026-03-01T00:00Z"], "leave out --from"),
        (["--outage", "2026-03-01T00:00Z..2026-03-01T01:00Z", "--catch-up", "-1"], "--catch-up must be >= 0 seconds"),
        (["--against", "/nonexistent/cronjobs.py"], "--against /nonexistent/cronjobs.py: no such file"),
        (["--against", "no_such_settings_module"], "--against no_such_settings_module: cannot import it"),
        (["--against", "tests.cronjobs.jobs"], "--against tests.cronjobs.jobs: defines no CRONJOBS"),
        (["nightly"], "`crontab plan` takes no job argument"),
    ],
)
def test_bad_input_is_refused_in_one_line(args, message, monkeypatch):
    if args[0] == "--outage":
        monkeypatch.setattr(plan, "MAX_RUNS", 100)  # the cap itself, at the size --from/--to checks above
    assert message in refused(*args)


def test_bad_input_in_the_other_cronjobs_is_refused_in_one_line(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text(f"CRONJOBS = [('61 * * * *', '{JOBS}.succeed'), ('* * * * *', '{JOBS}.nope')]\n")
    assert "CRONJOBS[0]: invalid schedule '61 * * * *'" in refused("--against", str(broken))
    assert "(and 1 more)" in refused("--against", str(broken))
    raising = tmp_path / "raising.py"
    raising.write_text("raise RuntimeError('half-written')\n")
    assert f"--against {raising}: the file raised RuntimeError('half-written')" == refused("--against", str(raising))
    zoned = tmp_path / "zoned.py"
    zoned.write_text("CRONJOBS = []\nTIME_ZONE = 'Mars/Olympus'\n")
    assert "TIME_ZONE unknown time zone 'Mars/Olympus'" in refused("--against", str(zoned))


def test_a_broken_cronjobs_plans_nothing(settings):
    settings.CRONJOBS = [("61 * * * *", f"{JOBS}.succeed")]
    assert "1 configuration error(s) in CRONJOBS; nothing planned" in refused()


def test_a_bad_catch_up_setting_is_refused_for_an_outage(settings):
    settings.CRONJOBS_WORK_CATCH_UP = "5 minutes"
    assert "CRONJOBS_WORK_CATCH_UP must be a number of seconds" in refused(
        "--outage", "2026-03-01T00:00Z..2026-03-01T01:00Z"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--from", "soon"],
            "CommandError: --from 'soon' is not an ISO 8601 time (e.g. 2026-03-29T02:00 or 2026-03-29T02:00+01:00)",
        ),
        (
            ["--format", "xml"],
            "CommandError: plan: --format must be text or json, got 'xml'",
        ),
    ],
)
def test_the_command_exits_2_saying_why_on_stderr(args, message):
    result = subprocess.run(
        [sys.executable, "manage.py", "crontab", "plan", *args, "--settings=tests.settings"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == message
    assert len(lines) == 1 or lines[0].startswith("usage: ")  # argparse's own refusals print the usage first


def test_due_minutes_are_computed_once_per_schedule_and_zone(monkeypatch):
    """Costs that do not grow with what is declared: 300 jobs on one schedule cost one walk of next_run."""
    from cronjobs.registry import Job, parse_cronjobs

    jobs = parse_cronjobs([("*/5 * * * *", f"{JOBS}.succeed", {"name": f"job{i}"}) for i in range(300)]).jobs
    calls = []
    next_run = Job.next_run
    monkeypatch.setattr(Job, "next_run", lambda self, after: calls.append(self.name) or next_run(self, after))
    start, end = utc(2026, 3, 2, 10), utc(2026, 3, 2, 11)
    assert len(plan.planned(jobs, start, end)) == 300 * 12
    assert len(calls) == 13
    calls.clear()
    # 11:00 is not in [10:00, 11:00); 10:55 is 300 s old at 11:00, past its start limit (150 s): 12 in the gap
    assert [effect.gap.count for effect in plan.outage(jobs, start, end, 300)] == [12] * 300
    assert len(calls) == 13
