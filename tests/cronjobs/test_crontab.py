"""`crontab add/show/remove` against the real crontab binary, for a throw-away user, plus the line format."""

import shlex
import stat
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from cronjobs import system_crontab as backend
from cronjobs.registry import get_registry, parse_cronjobs
from tests.cronjobs.conftest import ROOT, manage, write_config

JOBS = "tests.cronjobs.jobs"
CRONJOBS = [
    ("*/5 * * * *", f"{JOBS}.succeed"),
    ("0 3 * * 1", f"{JOBS}.add", [1], {"b": 2}, "> /dev/null 2>&1"),
    ("@daily", f"{JOBS}.boom", {"name": "nightly", "timeout": 60}),
]
# What a real user's crontab holds besides our lines: all of it must survive byte for byte.
FOREIGN = (
    "# my own notes  \n"
    "MAILTO=ops@example.com\n"
    "PATH=/usr/local/bin:/usr/bin:/bin\n"
    "\n"
    "*/10 * * * * /usr/local/bin/backup.sh --quiet 2>&1 | logger -t backup\n"
    "   # an indented comment\n"
    "0 4 * * * /usr/bin/python /srv/other/manage.py crontab run 0123456789abcdef0123456789abcdef"
    " # django-cronjobs for otherproject\n"
    "0 5 * * * /usr/bin/python /srv/checkout2/manage.py crontab run fedcba9876543210fedcba9876543210"
    " # django-cronjobs for tests\n"
    "15 * * * * cd /srv/checkout3 && python manage.py crontab run nightly --scheduled"
    " # django-cronjobs for tests [cronjobs 0123456789ab nightly]\n"
)


def ours(text: str) -> list[str]:
    config = backend.get_config()
    return [line for line in text.splitlines(keepends=True) if backend.classify(line, config).kind == "ours"]


def without_ours(text: str) -> str:
    """The text without this checkout's job lines and the comment of a crontab `add` created."""
    config = backend.get_config()
    kept = [line for line in text.splitlines(keepends=True) if backend.classify(line, config).kind not in OURS]
    return "".join(kept)


OURS = ("ours", "created")


def run_command(*args) -> tuple[str, str]:
    from io import StringIO

    out, err = StringIO(), StringIO()
    call_command("crontab", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# --- the line format (no crontab binary needed) ------------------------------------------------------


def test_line_runs_the_job_by_name_from_the_project_dir_with_its_settings(settings):
    settings.CRONJOBS = CRONJOBS
    settings.CRONTAB_COMMAND_PREFIX = "STAGE=prod"
    settings.CRONTAB_COMMAND_SUFFIX = ">> /var/log/cron.log"
    config = backend.get_config()
    line = backend.render_line(get_registry().get("add"), config)
    assert line.startswith(f"0 3 * * 1 cd {shlex.quote(str(ROOT))} && STAGE=prod ")
    assert f"{shlex.quote(sys.executable)} {shlex.quote(str(ROOT / 'manage.py'))} crontab run add --scheduled" in line
    assert f"--settings={config.settings_module} > /dev/null 2>&1 >> /var/log/cron.log # " in line
    assert line.endswith(f"[cronjobs {config.instance} add]\n")
    assert backend.classify(line, config).kind == "ours"


def test_paths_with_spaces_and_percent_are_quoted_for_shell_and_cron(settings, tmp_path):
    project = tmp_path / "my project %d"
    project.mkdir()
    (project / "manage.py").write_text("")
    settings.CRONJOBS = CRONJOBS
    settings.CRONTAB_DJANGO_MANAGE_PATH = str(project / "manage.py")
    settings.CRONTAB_PYTHON_EXECUTABLE = "/opt/py thon/bin/python"
    line = backend.render_line(get_registry().get("succeed"), backend.get_config())
    assert "cd '" in line and "my project \\%d'" in line
    assert "'/opt/py thon/bin/python'" in line
    # What cron hands to sh after turning \% back into %: the shell splits it as intended.
    command = line.split(" ", 5)[5].replace("\\%", "%")
    argv = shlex.split(command, comments=True)
    assert argv[1] == str(project) and argv[3] == "/opt/py thon/bin/python"


def test_classify_never_raises_on_odd_lines(settings):
    config = backend.get_config()
    for line in ["", "\n", "#", "x" * 5000, "* * * * * crontab run zzz", "\x00\xff", "[cronjobs zz x]"]:
        assert backend.classify(line, config).kind in {"ours", "legacy", "foreign", "other"}


def test_plain_django_crontab_lines_of_this_checkout_are_replaced(settings):
    settings.CRONJOBS = CRONJOBS
    config = backend.get_config()
    job = get_registry().get("succeed")
    legacy = (
        f"*/5 * * * * {sys.executable} {config.manage_path} crontab run {job.legacy_hash}"
        f" --settings={config.settings_module} # {config.comment}\n"
    )
    plan = backend.plan_add(FOREIGN + legacy, list(get_registry().jobs), config)
    assert plan.removed == [f"legacy {job.legacy_hash}"]
    assert without_ours(plan.text) == FOREIGN


line_text = st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="%"), max_size=40)
foreign_line = st.one_of(
    st.just("\n"),
    line_text.map(lambda t: f"# {t}\n").filter(lambda t: not t.startswith(("# DO NOT EDIT", "# ("))),
    st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}=[A-Za-z0-9/:._-]{1,20}", fullmatch=True).map(lambda t: t + "\n"),
    st.tuples(
        st.sampled_from(["* * * * *", "*/7 2-4 * * 1,3", "@hourly", "0 0 1 jan *"]),
        st.from_regex(r"[a-z/][a-z0-9 /._|>&-]{0,30}", fullmatch=True),
    ).map(lambda p: f"{p[0]} {p[1].strip() or 'true'}\n"),
    st.from_regex(r"[0-9a-f]{32}", fullmatch=True).map(
        lambda h: f"0 4 * * * /usr/bin/python /srv/other/manage.py crontab run {h} # django-cronjobs for other\n"
    ),
    st.from_regex(r"[0-9a-f]{12}", fullmatch=True).map(
        lambda i: (
            f"0 4 * * * cd /srv/x && python manage.py crontab run succeed --scheduled # x [cronjobs {i} succeed]\n"
        )
    ),
)


@given(st.lists(foreign_line, max_size=12), st.permutations(range(len(CRONJOBS))), st.integers(0, 3))
@hsettings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_plan_keeps_foreign_lines_and_converges_in_one_add(settings, lines, order, keep):
    config = backend.get_config()
    if any(f"[cronjobs {config.instance} " in line for line in lines):
        return  # a generated id equal to ours would be ours by definition
    foreign = "".join(lines)
    jobs = list(parse_cronjobs([CRONJOBS[i] for i in order][: keep or None]).jobs)
    first = backend.plan_add(foreign, jobs, config)
    assert without_ours(first.text) == foreign
    assert sorted(ours(first.text)) == sorted(backend.render_line(job, config) for job in jobs)
    again = backend.plan_add(first.text, jobs, config)
    assert again.text == first.text and again.added == again.changed == again.removed == []
    edited = list(parse_cronjobs(CRONJOBS).jobs)
    after_edit = backend.plan_add(first.text, edited, config)
    assert backend.plan_add(after_edit.text, edited, config).text == after_edit.text  # converged in one add
    assert without_ours(after_edit.text) == foreign
    assert backend.plan_remove(after_edit.text, config).text == foreign


def test_plan_diff_has_the_exact_lines_and_says_when_the_crontab_is_created_or_deleted(settings):
    settings.CRONJOBS = CRONJOBS
    config, jobs = backend.get_config(), list(get_registry().jobs)
    rendered = [backend.render_line(job, config).rstrip("\n") for job in jobs]
    created = backend.plan_add(None, jobs, config)  # the user has no crontab
    diff = created.diff()
    assert diff[:3] == ["--- no crontab now", "+++ crontab after", "@@ -0,0 +1,4 @@"]
    assert diff[3:] == [f"+{backend.CREATED_LINE.rstrip()}", *(f"+{line}" for line in rendered)]
    assert backend.plan_add(created.text, jobs, config).diff() == []
    removal = backend.plan_remove(created.text, config)
    assert removal.text is None and removal.removed == ["succeed", "add", "nightly"]
    assert removal.diff()[:2] == ["--- crontab now", "+++ no crontab after (deleted: `crontab -r`)"]
    assert removal.report()[-1] == (
        "the crontab itself: deleted (`crontab add` had created it and nothing else is left)"
    )
    assert backend.plan_remove(None, config).text is None and backend.plan_add(None, [], config).diff() == []


# --- the real crontab binary, for a throw-away user -------------------------------------------------


@pytest.fixture
def user_settings(settings, crontab_user):
    settings.CRONJOBS = CRONJOBS
    settings.CRONTAB_EXECUTABLE = crontab_user.executable  # an executable with arguments
    return settings


@pytest.mark.crontab
@pytest.mark.django_db
def test_add_add_edit_remove_keep_every_other_line_byte_for_byte(user_settings, crontab_user):
    crontab_user.install(FOREIGN)
    out, _ = run_command("add")
    assert "added: succeed, add, nightly" in out
    installed = crontab_user.read()
    assert without_ours(installed) == FOREIGN and len(ours(installed)) == 3

    out, _ = run_command("add")
    assert crontab_user.read() == installed and "nothing written" in out  # no duplicates

    user_settings.CRONJOBS = [
        CRONJOBS[0],
        ("*/2 * * * *", f"{JOBS}.add", [1], {"b": 2}),
        ("@hourly", f"{JOBS}.return_nothing"),
    ]
    out, _ = run_command("add")
    assert (
        "added: return_nothing" in out
        and "changed: add" in out
        and "removed: nightly" in out
        and "kept: succeed" in out
    )
    edited = crontab_user.read()
    assert without_ours(edited) == FOREIGN
    assert [backend.classify(line, backend.get_config()).name for line in ours(edited)] == [
        "succeed",
        "add",
        "return_nothing",
    ]
    out, _ = run_command("add")
    assert crontab_user.read() == edited  # converged in one run

    out, _ = run_command("remove")
    assert "removed: succeed, add, return_nothing" in out
    assert crontab_user.read() == FOREIGN


@pytest.mark.crontab
@pytest.mark.django_db
def test_add_for_a_user_without_crontab_then_remove_leaves_none(user_settings, crontab_user):
    out, _ = run_command("add")
    installed = crontab_user.read()
    assert installed.startswith(backend.CREATED_LINE) and len(ours(installed)) == 3
    assert "the crontab itself: created" in out
    out, _ = run_command("remove")
    assert crontab_user.read() is None  # `crontab -l`: "no crontab for <user>", as before `add`
    assert "the crontab itself: deleted" in out and "crontab deleted" in out


@pytest.mark.crontab
@pytest.mark.django_db
def test_remove_keeps_a_created_crontab_while_the_user_has_lines_in_it(user_settings, crontab_user):
    run_command("add")
    own = "0 1 * * * /usr/local/bin/mine\n"
    crontab_user.install(crontab_user.read() + own)  # the user adds a line of their own
    run_command("remove")
    assert crontab_user.read() == backend.CREATED_LINE + own
    crontab_user.install(backend.CREATED_LINE)  # ... and later takes it out again
    run_command("remove")
    assert crontab_user.read() is None


@pytest.mark.crontab
@pytest.mark.django_db
def test_an_empty_crontab_that_existed_before_add_stays_after_remove(user_settings, crontab_user):
    subprocess.run(["crontab", "-u", crontab_user.name, "-"], input=b"", check=True)
    run_command("add")
    assert not crontab_user.read().startswith(backend.CREATED_LINE)
    run_command("remove")
    assert crontab_user.read() == ""


def changed_lines(out: str, sign: str) -> list[str]:
    """The lines a dry run's diff shows added ("+") or removed ("-"), without their sign."""
    return [line[3:] for line in out.splitlines() if line.startswith(f"  {sign}") and line[3:4] != sign]


@pytest.mark.crontab
@pytest.mark.django_db
def test_dry_run_prints_the_exact_lines_it_would_add_change_and_remove(user_settings, crontab_user):
    crontab_user.install(FOREIGN)
    config = backend.get_config()
    before = [backend.render_line(job, config).rstrip("\n") for job in get_registry().jobs]
    out, _ = run_command("add", "--dry-run")
    assert "  --- crontab now" in out.splitlines() and "  +++ crontab after" in out.splitlines()
    assert changed_lines(out, "+") == before and changed_lines(out, "-") == []
    assert not any(line.strip() and line in out for line in FOREIGN.splitlines())  # other lines: not shown
    assert "dry run; nothing written" in out and crontab_user.read() == FOREIGN

    run_command("add")
    user_settings.CRONJOBS = [CRONJOBS[0], ("*/2 * * * *", f"{JOBS}.add", [1], {"b": 2})]
    out, _ = run_command("add", "--dry-run")
    assert "changed: add" in out and "removed: nightly" in out
    assert changed_lines(out, "-") == before[1:]  # add's old line and nightly's
    assert changed_lines(out, "+") == [backend.render_line(get_registry().get("add"), config).rstrip("\n")]
    assert without_ours(crontab_user.read()) == FOREIGN and ours(crontab_user.read()) == [f"{b}\n" for b in before]


@pytest.mark.crontab
@pytest.mark.django_db
def test_invalid_schedule_changes_nothing_and_exits_2(user_settings, crontab_user):
    crontab_user.install(FOREIGN)
    user_settings.CRONJOBS = [*CRONJOBS, ("0 0 L * *", f"{JOBS}.succeed", {"name": "last_day"})]
    with pytest.raises(CommandError) as error:
        run_command("add")
    assert error.value.returncode == 2 and "not changed" in str(error.value)
    assert crontab_user.read() == FOREIGN


@pytest.mark.crontab
@pytest.mark.django_db
def test_failing_crontab_l_changes_nothing_and_exits_1(user_settings, crontab_user):
    # A real failure: crontab -l as an unprivileged user asking for someone else's crontab.
    crontab_user.install(FOREIGN)
    user_settings.CRONTAB_EXECUTABLE = f"runuser -u nobody -- /usr/bin/crontab -u {crontab_user.name}"
    with pytest.raises(CommandError) as error:
        run_command("add")
    assert error.value.returncode == 1 and "failed" in str(error.value) and "not changed" in str(error.value)
    assert crontab_user.read() == FOREIGN
    with pytest.raises(CommandError):
        run_command("remove")
    assert crontab_user.read() == FOREIGN


@pytest.mark.crontab
def test_unknown_user_exit_code_of_the_real_command(crontab_user, world_dir):
    config = write_config(world_dir, None, CRONJOBS=CRONJOBS, CRONTAB_EXECUTABLE="/usr/bin/crontab -u no-such-user-xyz")
    result = manage("crontab", "add", config=config)
    assert result.returncode == 1 and "unknown" in result.stderr


def test_read_failure_other_than_no_crontab_never_writes(settings, tmp_path):
    # django-crontab's worst defect: a failing `crontab -l` read as empty, then written back empty.
    # A stand-in crontab whose -l fails for another reason and whose writes are logged; the same
    # path against the real binary is test_failing_crontab_l_changes_nothing_and_exits_1.
    log = tmp_path / "writes.log"
    fake = tmp_path / "crontab"
    fake.write_text(
        '#!/bin/sh\nif [ "$1" = "-l" ]; then echo "crontab: cannot '
        f'open: Permission denied" >&2; exit 1; fi\necho "$@" >> {log}\n'
    )
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    settings.CRONJOBS = CRONJOBS
    settings.CRONTAB_EXECUTABLE = str(fake)
    for subcommand in ("add", "remove"):
        with pytest.raises(CommandError, match="Permission denied"):
            run_command(subcommand)
    assert not log.exists()


@pytest.mark.django_db
def test_show_without_a_crontab_binary_lists_every_job_then_exits_1(settings, tmp_path):
    """`make run` needs no crontab; on such a machine `show` still says all it knows, then exits 1
    (crontab unreadable, CONTRACT section 4)."""
    from io import StringIO

    settings.CRONJOBS = CRONJOBS
    settings.CRONTAB_EXECUTABLE = str(tmp_path / "no-crontab-here")
    out = StringIO()
    with pytest.raises(CommandError) as error:
        call_command("crontab", "show", stdout=out)
    assert error.value.returncode == 1 and "cannot run" in str(error.value)
    assert all(f"{name}  [" in out.getvalue() for name in ("succeed", "add", "nightly"))
    assert out.getvalue().count("last run:  never") == 3


@pytest.mark.crontab
@pytest.mark.django_db
def test_show_lists_jobs_and_flags_stale_and_foreign_lines(user_settings, crontab_user):
    crontab_user.install(FOREIGN)
    run_command("add")
    user_settings.CRONJOBS = [CRONJOBS[0], ("*/2 * * * *", f"{JOBS}.return_nothing")]
    config = backend.get_config()
    legacy = f"* * * * * python {config.manage_path} crontab run {'a' * 32} # {config.comment}\n"
    crontab_user.install(crontab_user.read() + legacy)
    out, _ = run_command("show")
    assert "succeed  [*/5 * * * *]  Every 5 minutes" in out
    assert "installed: yes" in out and "installed: no (run `crontab add`)" in out
    assert "next run:  " in out and "UTC" in out and "last run:  never" in out
    assert "add: installed but not in CRONJOBS" in out and "nightly: installed but not in CRONJOBS" in out
    assert f"{'a' * 32}: plain django-crontab line matching no job" in out
    assert "3 line(s) of other projects or checkouts (left alone)" in out


@given(st.lists(foreign_line, max_size=8))
@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@pytest.mark.crontab
@pytest.mark.django_db
def test_real_crontab_round_trip_property(crontab_user_session, lines):
    user = crontab_user_session
    foreign = "".join(lines)
    with override_settings(CRONJOBS=CRONJOBS, CRONTAB_EXECUTABLE=user.executable):
        user.install(foreign)
        run_command("add")
        first = user.read()
        assert without_ours(first) == foreign and len(ours(first)) == 3
        run_command("add")
        assert user.read() == first
        run_command("remove")
        assert user.read() == (foreign if foreign else None)  # no crontab before: none after


def test_executable_with_arguments_is_split_not_shelled(settings, tmp_path):
    settings.CRONTAB_EXECUTABLE = f"{tmp_path}/my crontab -u 'dep loy'"
    with pytest.raises(backend.CrontabError, match="cannot run"):
        backend.read_crontab(backend.get_config())
    settings.CRONTAB_EXECUTABLE = f"'{tmp_path}/my crontab' -u 'dep loy'"
    assert backend.get_config().executable == (f"{tmp_path}/my crontab", "-u", "dep loy")


@pytest.mark.crontab
def test_crontab_rejecting_a_file_is_an_error_and_keeps_the_old_one(settings, crontab_user):
    crontab_user.install(FOREIGN)
    settings.CRONTAB_EXECUTABLE = crontab_user.executable
    with pytest.raises(backend.CrontabError, match="refused the new file"):
        backend.write_crontab(backend.get_config(), FOREIGN + "not a cron line\n")
    assert crontab_user.read() == FOREIGN
