"""The registry: both django-crontab formats, options, legacy hashes, errors instead of guesses, reloads."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.core import checks
from django_crontab.crontab import Crontab
from hypothesis import given
from hypothesis import strategies as st

from cronjobs.registry import (
    JobConfigError,
    UnknownJob,
    get_job,
    get_registry,
    legacy_hash,
    parse_cronjobs,
    schedule_error,
)

JOBS = "tests.cronjobs.jobs"


def django_crontab_hash(entry):
    # django-crontab's own (name-mangled, self-free) function: our alias must equal it exactly.
    return Crontab.__dict__["_Crontab__hash_job"](None, entry)


def only_job(entry):
    registry = parse_cronjobs([entry])
    assert registry.problems == ()
    (job,) = registry.jobs
    return job


@pytest.mark.parametrize(
    "entry, args, kwargs, suffix",
    [
        (("*/5 * * * *", f"{JOBS}.succeed"), (), {}, ""),
        (("*/5 * * * *", f"{JOBS}.succeed", "> /dev/null 2>&1"), (), {}, "> /dev/null 2>&1"),
        (("*/5 * * * *", f"{JOBS}.add", [1]), (1,), {}, ""),
        (("*/5 * * * *", f"{JOBS}.add", [1], {"b": 2}), (1,), {"b": 2}, ""),
        (("*/5 * * * *", f"{JOBS}.add", (1,), {"b": 2}, "2>&1"), (1,), {"b": 2}, "2>&1"),
        (["*/5 * * * *", f"{JOBS}.add", [1], {"b": 2}, "2>&1"], (1,), {"b": 2}, "2>&1"),  # JSON-ish lists too
    ],
)
def test_both_django_crontab_formats(entry, args, kwargs, suffix):
    job = only_job(entry)
    assert (job.name, job.path, job.args, dict(job.kwargs), job.suffix) == (
        entry[1].rsplit(".", 1)[1],
        entry[1],
        args,
        kwargs,
        suffix,
    )
    assert job.legacy_hash == django_crontab_hash(entry)
    assert job.problems == ()


def test_options_dict_sets_name_timeout_grace_enabled_description_overlap():
    job = only_job(
        (
            "@daily",
            f"{JOBS}.add",
            [1],
            {},
            {
                "name": "nightly_add",
                "timeout": 30,
                "grace": 120,
                "enabled": False,
                "description": "adds",
                "allow_overlap": True,
            },
        )
    )
    assert (job.name, job.timeout, job.grace, job.enabled, job.description, job.allow_overlap) == (
        "nightly_add",
        30.0,
        120.0,
        False,
        "adds",
        True,
    )
    assert job.cron_expression == "0 0 * * *"


def test_options_after_format_1_suffix_and_after_path():
    assert only_job(("* * * * *", f"{JOBS}.succeed", "2>&1", {"name": "a"})).suffix == "2>&1"
    assert only_job(("* * * * *", f"{JOBS}.succeed", {"name": "b"})).name == "b"


def test_legacy_hash_of_entry_without_options_is_an_alias_too():
    plain = ("*/5 * * * *", f"{JOBS}.succeed")
    job = only_job((*plain, {"timeout": 10}))
    assert django_crontab_hash(plain) in job.legacy_hashes
    assert parse_cronjobs([(*plain, {"timeout": 10})]).get(django_crontab_hash(plain)) == job


def test_job_is_immutable():
    job = only_job(("* * * * *", f"{JOBS}.add", [1], {"b": 2}))
    with pytest.raises(AttributeError):
        job.name = "other"
    with pytest.raises(TypeError):
        job.kwargs["b"] = 3


@pytest.mark.parametrize(
    "entry, code, words",
    [
        ("* * * * * app.job", "cronjobs.E002", "expected a tuple"),
        (("* * * * *",), "cronjobs.E002", "expected a tuple"),
        (("* * * * *", f"{JOBS}.add", [1], {"name": "x"}), "cronjobs.E002", "could be kwargs or options"),
        (("* * * * *", f"{JOBS}.add", [1], "suffix"), "cronjobs.E002", "cannot tell"),
        (("* * * * *", f"{JOBS}.add", 5), "cronjobs.E002", "cannot tell"),
        (("* * * * *", f"{JOBS}.add", [1], {}, "s", "extra"), "cronjobs.E002", "cannot tell"),
        (("* * * * *", "no_dots"), "cronjobs.E002", "dotted path"),
        (("61 * * * *", f"{JOBS}.succeed"), "cronjobs.E003", "invalid schedule"),
        (("* * * *", f"{JOBS}.succeed"), "cronjobs.E003", "expected 5 fields"),
        (("0 0 L * *", f"{JOBS}.succeed"), "cronjobs.E003", "not valid cron syntax"),
        (("@reboot", f"{JOBS}.succeed"), "cronjobs.E003", "unknown macro"),
        (("* * * * *", f"{JOBS}.succeed", [object()]), "cronjobs.E007", "JSON"),
        (("* * * * *", f"{JOBS}.succeed", {"colour": "red"}), "cronjobs.E008", "unknown option"),
        (("* * * * *", f"{JOBS}.succeed", {"timeout": -1}), "cronjobs.E008", "timeout"),
        (("* * * * *", f"{JOBS}.succeed", {"enabled": "no"}), "cronjobs.E008", "enabled"),
        (("* * * * *", f"{JOBS}.succeed", {"name": "has space"}), "cronjobs.E009", "invalid job name"),
        (("* * * * *", f"{JOBS}.succeed", {"name": "0" * 32}), "cronjobs.E009", "invalid job name"),
        (("* * * * *", f"{JOBS}.succeed", "a\nb"), "cronjobs.E002", "newline"),
        (("* * * * *", f"{JOBS}.missing"), "cronjobs.E004", "cannot import"),
        (("* * * * *", "tests.cronjobs.nosuchmodule.job"), "cronjobs.E004", "cannot import"),
        (("* * * * *", f"{JOBS}.NOT_CALLABLE"), "cronjobs.E005", "not callable"),
    ],
)
def test_bad_entries_are_errors_with_an_id_and_hint(entry, code, words):
    problems = parse_cronjobs([entry]).all_problems()
    assert [p.id for p in problems] == [code]
    assert words in problems[0].msg and "CRONJOBS[0]" in problems[0].msg


def test_duplicate_names_are_an_error_on_the_second_entry():
    registry = parse_cronjobs([("* * * * *", f"{JOBS}.succeed"), ("@daily", f"{JOBS}.succeed")])
    problems = registry.all_problems()
    assert [(p.id, p.index) for p in problems] == [("cronjobs.E006", 1)]
    assert "{'name'" in problems[0].hint


def test_cronjobs_not_a_list():
    assert [p.id for p in parse_cronjobs("oops").all_problems()] == ["cronjobs.E001"]


def test_one_bad_entry_does_not_hide_the_good_ones():
    registry = parse_cronjobs([("61 * * * *", f"{JOBS}.boom"), ("* * * * *", f"{JOBS}.succeed")])
    assert registry.names() == ["boom", "succeed"]
    assert registry.jobs[1].problems == ()


def test_get_job_by_name_hash_unknown_and_broken(settings):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed"), ("61 * * * *", f"{JOBS}.boom")]
    assert get_job("succeed").path == f"{JOBS}.succeed"
    assert get_job(django_crontab_hash(settings.CRONJOBS[0])).name == "succeed"
    with pytest.raises(UnknownJob, match="no job named 'nope'"):
        get_job("nope")
    with pytest.raises(JobConfigError, match="invalid schedule"):
        get_job("boom")


def test_registry_reloads_when_settings_change(settings):
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.succeed")]
    assert get_registry().names() == ["succeed"]
    settings.CRONJOBS = [("* * * * *", f"{JOBS}.boom")]
    assert get_registry().names() == ["boom"]
    assert get_registry() is get_registry()  # parsed once per settings value


def test_system_check_reports_each_problem_with_its_id(settings):
    settings.CRONJOBS = [("61 * * * *", f"{JOBS}.succeed"), ("* * * * *", f"{JOBS}.NOT_CALLABLE")]
    errors = checks.run_checks(tags=["cronjobs"])
    assert sorted(e.id for e in errors) == ["cronjobs.E003", "cronjobs.E005"]
    assert all(e.hint for e in errors)


def test_crontab_settings_are_checked(settings):
    settings.CRONJOBS = []
    settings.CRONTAB_EXECUTABLE = "/usr/bin/crontab -u 'unterminated"
    settings.CRONTAB_COMMAND_SUFFIX = "a\nb"
    settings.CRONTAB_DJANGO_MANAGE_PATH = "/nonexistent/manage.py"
    errors = checks.run_checks(tags=["cronjobs"])
    assert [e.id for e in errors] == ["cronjobs.E010"] * 3


def test_schedule_times_use_settings_time_zone(settings):
    settings.TIME_ZONE = "Europe/Paris"
    job = only_job(("0 2 * * *", f"{JOBS}.succeed"))
    now = datetime(2026, 6, 1, 12, 0, tzinfo=ZoneInfo("UTC"))
    assert job.next_run(now) == datetime(2026, 6, 2, 2, 0, tzinfo=ZoneInfo("Europe/Paris"))
    assert job.latest_run(now) == datetime(2026, 6, 1, 2, 0, tzinfo=ZoneInfo("Europe/Paris"))
    # At the scheduled minute itself, that minute is the latest run.
    assert job.latest_run(datetime(2026, 6, 2, 2, 0, 30, tzinfo=ZoneInfo("Europe/Paris"))).day == 2


@given(st.lists(st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none()), max_size=4))
def test_legacy_hash_matches_django_crontab_for_any_json_arguments(args):
    entry = ("*/5 * * * *", f"{JOBS}.add", args, {"b": 1})
    assert legacy_hash(entry) == django_crontab_hash(entry)


@given(st.text(max_size=30))
def test_schedule_validation_never_raises(text):
    assert schedule_error(text) is None or isinstance(schedule_error(text), str)


def test_jitter_is_a_fixed_offset_from_the_name_within_its_bound():
    registry = parse_cronjobs(
        [("* * * * *", "tests.cronjobs.jobs.succeed", {"name": f"job_{i}", "jitter": 30}) for i in range(200)]
        + [("* * * * *", "tests.cronjobs.jobs.succeed", {"name": "plain"})]
    )
    offsets = [job.start_offset for job in registry.jobs[:200]]
    assert all(0 <= offset <= 30 for offset in offsets)
    assert len(set(offsets)) > 20  # spread, not one second for all
    again = parse_cronjobs([("* * * * *", "tests.cronjobs.jobs.succeed", {"name": "job_7", "jitter": 30})])
    assert again.jobs[0].start_offset == offsets[7]  # the same every time the name is parsed
    assert registry.jobs[200].start_offset == 0


@pytest.mark.parametrize("jitter", [60, -1, 2.5, True, "10"])
def test_jitter_outside_0_to_59_whole_seconds_is_refused(jitter):
    registry = parse_cronjobs([("* * * * *", "tests.cronjobs.jobs.succeed", {"jitter": jitter})])
    (problem,) = registry.jobs[0].problems
    assert problem.id == "cronjobs.E008"
    assert f"option 'jitter': must be a whole number of seconds from 0 to 59, got {jitter!r}" in problem.msg
    assert registry.jobs[0].jitter == 0
