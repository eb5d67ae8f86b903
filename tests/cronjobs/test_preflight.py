"""`crontab add` runs one installed line as cron would before writing; `crontab run <job> --preflight`."""

import os
import re
import secrets
import shlex
import stat
import subprocess
import sys
import time
from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from dotenv import dotenv_values

from cronjobs import preflight as backend
from cronjobs import system_crontab
from cronjobs.models import JobRun
from cronjobs.registry import get_registry
from tests.cronjobs.conftest import ROOT, clean_env, config_prefix, manage, write_config
from tests.cronjobs.test_cron_daemon import python_for
from tests.reachable import unavailable

SECRET = "x" * 40 + "-Ab3$kQ9!zR7pL2mN8vW4yT6uE1oI5"
TRACEBACK = """Traceback (most recent call last):
  File "manage.py", line 9, in main
    raise KeyError("create_api_token")
KeyError: 'create_api_token'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "x.py", line 1, in <module>
django.core.exceptions.ImproperlyConfigured: DJANGO_SECRET_KEY is not set
"""


def command(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("crontab", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "executable, user",
    [("/usr/bin/crontab", None), ("/usr/bin/crontab -u deploy", "deploy"), ("crontab -udeploy", "deploy")],
)
def test_crontab_user_comes_from_the_executables_u_argument(settings, executable, user):
    settings.CRONTAB_EXECUTABLE = executable
    assert backend.crontab_user(system_crontab.get_config()) == user


def test_preflight_command_is_the_installed_line_in_check_mode_without_suffixes(settings):
    settings.CRONJOBS = [("0 3 * * 1", "tests.cronjobs.jobs.succeed", "> /dev/null 2>&1", {"name": "x"})]
    settings.CRONTAB_COMMAND_SUFFIX = ">> /var/log/cron\\%d.log"
    job = get_registry().get("x")
    config = system_crontab.get_config()
    installed = system_crontab.command_for(job, config)
    check = backend.preflight_command(job, config)
    assert check.endswith("crontab run x --scheduled --settings=tests.settings --preflight")
    assert installed.startswith(check.removesuffix(" --preflight"))
    assert ">" not in check and "%" not in check


def test_first_error_line_and_fixes(settings):
    settings.CRONJOBS_ENV_FILE = "/srv/crm/.env"
    config = system_crontab.get_config()
    assert backend.first_error_line(TRACEBACK) == (
        "django.core.exceptions.ImproperlyConfigured: DJANGO_SECRET_KEY is not set"
    )
    assert backend.first_error_line("error: DJANGO_SECRET_KEY is not set (required)\n") == (
        "DJANGO_SECRET_KEY is not set (required)"
    )
    fix = backend.preflight_fix("DJANGO_SECRET_KEY is not set (required)", config, "deploy")
    assert fix == "DJANGO_SECRET_KEY is not set under cron: put it in /srv/crm/.env"
    fix = backend.preflight_fix("/bin/sh: 1: /root/.venv/bin/python: Permission denied", config, "deploy")
    assert fix.startswith("user deploy may not read or run what the line needs")
    fix = backend.preflight_fix("database unreachable or not migrated (sqlite): no such table", config, None)
    assert "DATABASE_URL" in fix


@pytest.mark.django_db
def test_run_preflight_checks_and_runs_nothing(settings):
    settings.CRONJOBS = [("* * * * *", "tests.cronjobs.jobs.boom", {"name": "boom"})]
    out, _ = command("run", "boom", "--preflight")
    assert out.startswith("preflight ok: boom can run (python ")
    assert not JobRun.objects.exists()


def test_run_preflight_on_an_unmigrated_database_exits_1(world_dir):
    config = write_config(world_dir, None, DATABASE_URL=None)
    env_db = f"sqlite:///{world_dir}/empty.sqlite3"
    (world_dir / "cfg.json").write_text(config.read_text().replace('"DATABASE_URL": ""', f'"DATABASE_URL": "{env_db}"'))
    result = manage("crontab", "run", "log_crm_heartbeat", "--preflight", config=world_dir / "cfg.json")
    assert result.returncode == 3, result.stdout + result.stderr  # as `crontab run` without its database
    assert "database unreachable or not migrated (sqlite): no such table: cronjobs_jobrun" in result.stderr


def fake_crontab(folder) -> tuple[str, "os.PathLike"]:
    """A crontab executable for this user that keeps its file in `folder`."""
    store = folder / "crontab.txt"
    script = folder / "fake-crontab"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-l" ]; then [ -f {store} ] && exec cat {store}; echo "no crontab for me" >&2; exit 1; fi\n'
        f"cat > {store}\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script), store


@pytest.mark.slow  # several Django processes: over 2 CPU-seconds (docs/testing.md, Tiers)
@pytest.mark.django_db
def test_add_refuses_a_wrong_environment_with_the_fix_then_installs_once_fixed(settings, world_dir, shared_db):
    """The shell that runs `add` has DJANGO_SECRET_KEY; cron would not: nothing is written until the env
    file has it."""
    executable, store = fake_crontab(world_dir)
    env_file = world_dir / "crm.env"
    env_file.write_text(f"DATABASE_URL={shared_db.url}\n")
    settings.CRONTAB_EXECUTABLE = executable
    settings.CRONTAB_DJANGO_SETTINGS_MODULE = "alx_backend_graphql_crm.settings"
    settings.CRONTAB_COMMAND_PREFIX = f"CRM_ENV_FILE={shlex.quote(str(env_file))}"
    settings.CRONJOBS_ENV_FILE = str(env_file)
    settings.CRONJOBS_PREFLIGHT = True

    with pytest.raises(CommandError) as refused:
        command("add")
    assert refused.value.returncode == 1 and "the crontab was not changed" in str(refused.value)
    assert not store.exists()

    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError):
        call_command("crontab", "add", stdout=out, stderr=err)
    lines = err.getvalue().splitlines()
    assert lines[0] == "preflight failed: the installed lines would not run under cron"
    assert lines[1].startswith("  error: DJANGO_SECRET_KEY is not set (required when DJANGO_DEBUG is off)")
    assert lines[2] == f"  fix: DJANGO_SECRET_KEY is not set under cron: put it in {env_file}"
    assert re.match(r"  command: /usr/bin/env -i PATH=/usr/bin:/bin SHELL=/bin/sh ", lines[3]), lines[3]

    env_file.write_text(f"DJANGO_SECRET_KEY={SECRET}\nDATABASE_URL={shared_db.url}\n")
    out, _ = command("add")
    assert "preflight ok" in out and "crontab written and verified" in out
    assert "crontab run log_crm_heartbeat --scheduled" in store.read_text()


@pytest.fixture
def settings_only_on_pythonpath(settings, world_dir, monkeypatch):
    """A settings module the shell running `add` finds only through PYTHONPATH (a folder with a space)."""
    extra = world_dir / "extra path"
    extra.mkdir()
    module = f"cron_only_settings_{secrets.token_hex(4)}"
    (extra / f"{module}.py").write_text("from tests.cronjobs.subprocess_settings import *  # noqa: F403\n")
    monkeypatch.setenv("PYTHONPATH", str(extra))
    monkeypatch.syspath_prepend(str(extra))
    monkeypatch.delenv("CRONTAB_COMMAND_PREFIX", raising=False)
    executable, store = fake_crontab(world_dir)
    settings.CRONJOBS = [("* * * * *", "tests.cronjobs.jobs.succeed")]
    settings.CRONTAB_EXECUTABLE = executable
    settings.CRONTAB_DJANGO_SETTINGS_MODULE = module
    settings.CRONTAB_COMMAND_PREFIX = ""
    settings.CRONJOBS_ENV_FILE = str(world_dir / "crm.env")
    settings.CRONJOBS_PREFLIGHT = True
    return SimpleNamespace(folder=extra, module=module, store=store, env_file=world_dir / "crm.env")


@pytest.mark.django_db
def test_a_module_found_only_through_pythonpath_is_told_apart_from_a_wrong_interpreter(
    settings, settings_only_on_pythonpath
):
    """Cron passes no PYTHONPATH on: the line run as cron would (env -i) cannot import the settings.
    The fix names the variable and the exact line that sets it; another interpreter is another fix."""
    case = settings_only_on_pythonpath
    lines = refused_add()
    assert lines[1] == f"  error: ModuleNotFoundError: No module named '{case.module}'"
    prefix = f"PYTHONPATH='{case.folder}'"
    assert lines[2] == (
        f"  fix: '{case.module}' is importable here only through PYTHONPATH (from {case.folder}), which cron "
        "does not pass on (and an env file is read too late for it, once Python runs): set it in the lines' "
        f'prefix, put the line CRONTAB_COMMAND_PREFIX="{prefix}" in {case.env_file} (or '
        f"CRONTAB_COMMAND_PREFIX = {prefix!r} in the settings)"
    )
    assert not case.store.exists()

    settings.CRONTAB_PYTHON_EXECUTABLE = "/usr/bin/python3"
    if subprocess.run(["/usr/bin/python3", "-c", "import django"], capture_output=True).returncode == 0:
        pytest.skip("/usr/bin/python3 has Django here: no wrong interpreter to try")
    lines = refused_add()
    assert lines[1] == "  error: ModuleNotFoundError: No module named 'django'"
    assert lines[2] == (
        "  fix: cron's Python (/usr/bin/python3) cannot import 'django': set CRONTAB_PYTHON_EXECUTABLE to the "
        "python that has the project's packages (e.g. the virtualenv's)"
    )


@pytest.mark.slow  # the full preflight of the fixed line: a Django process reaching the database
@pytest.mark.django_db
def test_the_pythonpath_fix_line_makes_add_pass(settings, settings_only_on_pythonpath, world_dir, shared_db):
    case = settings_only_on_pythonpath
    config = write_config(world_dir, shared_db, CRONJOBS=[["* * * * *", "tests.cronjobs.jobs.succeed"]])
    settings.CRONTAB_COMMAND_PREFIX = config_prefix(config)
    fix = refused_add()[2]
    case.env_file.write_text(fix.split("put the line ", 1)[1].split(f" in {case.env_file}", 1)[0] + "\n")
    settings.CRONTAB_COMMAND_PREFIX = dotenv_values(case.env_file)["CRONTAB_COMMAND_PREFIX"]  # what .env does
    assert settings.CRONTAB_COMMAND_PREFIX == f"{config_prefix(config)} PYTHONPATH='{case.folder}'"
    out, _ = command("add")
    assert "preflight ok" in out and f"--settings={case.module}" in case.store.read_text()


def refused_add() -> list[str]:
    """The lines on stderr of an `add` the preflight refused."""
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("crontab", "add", stdout=out, stderr=err)
    assert refused.value.returncode == 1, err.getvalue()
    return err.getvalue().splitlines()


@pytest.mark.django_db
def test_no_preflight_skips_it(settings, tmp_path):
    executable, store = fake_crontab(tmp_path)
    settings.CRONTAB_EXECUTABLE = executable
    settings.CRONTAB_DJANGO_SETTINGS_MODULE = "alx_backend_graphql_crm.settings"
    settings.CRONTAB_COMMAND_PREFIX = f"CRM_ENV_FILE={os.devnull}"
    settings.CRONJOBS_PREFLIGHT = True
    out, _ = command("add", "--no-preflight")
    assert "preflight:" not in out and "log_crm_heartbeat" in store.read_text()


@pytest.mark.slow
@pytest.mark.crontab
def test_installed_line_runs_for_a_throwaway_user_under_env_i(crontab_user, shared_db, world_dir):
    """A real `crontab -u <user>`: add (with its preflight, as that user), then one installed line run as
    that user under `env -i` with cron's PATH writes the heartbeat."""
    found = python_for(crontab_user.name)
    if found is None:
        unavailable(f"no Python with Django that user {crontab_user.name} may run")
    python, pythonpath = found
    env_file = world_dir / "crm.env"
    env_file.write_text(f"DJANGO_SECRET_KEY={SECRET}\nDATABASE_URL={shared_db.url}\nCRM_LOG_DIR={world_dir}\n")
    env_file.chmod(0o644)
    # The cron daemon is running: once the lines are in, it fires the heartbeat (*/5) itself at the next
    # five-minute mark and would hold this slot while the test's run starts. Begin just after a mark.
    to_mark = 300 - time.time() % 300
    if to_mark < 90:
        time.sleep(to_mark + 2)
    env = {
        "CRONTAB_EXECUTABLE": crontab_user.executable,
        "CRONTAB_PYTHON_EXECUTABLE": python,
        "CRONTAB_COMMAND_PREFIX": f"{pythonpath}CRM_ENV_FILE={env_file}",
        "CRM_ENV_FILE": str(env_file),
    }
    added = crontab_add(env)
    assert added.returncode == 0, added.stdout + added.stderr
    assert f"running log_crm_heartbeat's line as cron would (as {crontab_user.name})" in added.stdout
    assert "preflight ok" in added.stdout
    line = next(line for line in crontab_user.read().splitlines() if "crontab run log_crm_heartbeat" in line)
    installed = line.split(" ", 5)[5].split(" # ", 1)[0]

    ran = subprocess.run(
        backend.as_cron_argv(installed, crontab_user.name), capture_output=True, text=True, timeout=300
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "Traceback" not in ran.stderr
    written = world_dir / "crm_heartbeat_log.txt"
    assert written.exists(), f"{ran.stdout}{ran.stderr}{shared_db.runs('log_crm_heartbeat')}"
    heartbeat = written.read_text()
    assert re.fullmatch(r"\d\d/\d\d/\d{4}-\d\d:\d\d:\d\d CRM is alive\n", heartbeat), heartbeat
    assert [r["status"] for r in shared_db.runs("log_crm_heartbeat")] == ["succeeded"]


@pytest.mark.slow
@pytest.mark.crontab
def test_preflight_refuses_a_user_who_cannot_run_the_virtualenv(crontab_user, world_dir):
    """Installed for another user whose cron could not start the project's Python: refused, nothing written."""
    probe = subprocess.run(["runuser", "-u", crontab_user.name, "--", python_venv(), "-c", ""], capture_output=True)
    if probe.returncode == 0:
        pytest.skip(f"{crontab_user.name} can run this virtualenv's Python here")
    env = {"CRONTAB_EXECUTABLE": crontab_user.executable, "DJANGO_SECRET_KEY": SECRET, "CRM_ENV_FILE": os.devnull}
    added = crontab_add(env)
    assert added.returncode == 1, added.stdout + added.stderr
    assert "Permission denied" in added.stderr
    assert f"fix: user {crontab_user.name} may not read or run what the line needs" in added.stderr
    assert crontab_user.read() is None


def python_venv() -> str:
    return sys.executable


def crontab_add(env: dict) -> subprocess.CompletedProcess:
    """`manage.py crontab add` with the project's settings, only `env` on top of a clean environment."""
    base = {k: v for k, v in clean_env().items() if not k.startswith(("CRM_", "CRONTAB_"))}
    return subprocess.run(
        [python_venv(), "manage.py", "crontab", "add"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
