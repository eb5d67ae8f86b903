"""`crontab add`'s preflight: one installed line run as cron will run it, before anything is written."""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
import shlex
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from django.conf import settings

from cronjobs.registry import Job
from cronjobs.system_crontab import CrontabConfig, command_for

CRON_PATH = "/usr/bin:/bin"  # what cron gives a line (Debian's and cronie's default)


def crontab_user(config: CrontabConfig) -> str | None:
    """The user of `-u <user>` in CRONTAB_EXECUTABLE; None means the current user's own crontab."""
    args = config.executable[1:]
    for i, arg in enumerate(args):
        if arg == "-u" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("-u") and len(arg) > 2:
            return arg[2:]
    return None


def preflight_command(job: Job, config: CrontabConfig) -> str:
    """The job's installed command in its no-op check mode, as /bin/sh gets it from cron.

    Suffixes are left out (they usually redirect the output the check needs to read), and cron's `\\%`
    escapes are undone as cron does.
    """
    command = command_for(replace(job, suffix=""), replace(config, suffix=""))
    return f"{command} --preflight".replace("\\%", "%")


def as_cron_argv(command: str, user: str | None) -> list[str]:
    """argv running `command` as cron does: `/bin/sh -c` under `env -i` with cron's variables, as `user`."""
    entry = pwd.getpwnam(user) if user else pwd.getpwuid(os.geteuid())
    variables = [
        f"PATH={CRON_PATH}",
        "SHELL=/bin/sh",
        f"HOME={entry.pw_dir}",
        f"LOGNAME={entry.pw_name}",
        f"USER={entry.pw_name}",
    ]
    argv = ["/usr/bin/env", "-i", *variables, "/bin/sh", "-c", command]
    if entry.pw_uid != os.geteuid():
        # runuser (util-linux) needs root, as `crontab -u` does; setpriv is the fallback without it.
        if Path("/usr/sbin/runuser").exists() or Path("/sbin/runuser").exists():
            return ["runuser", "-u", entry.pw_name, "--", *argv]
        return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--", *argv]
    return argv


@dataclass(frozen=True)
class PreflightFailure:
    """Why the installed line would not run under cron, in one line, and what to do about it."""

    error: str
    fix: str
    command: str
    output: str

    def report(self) -> list[str]:
        return [f"  error: {self.error}", f"  fix: {self.fix}", f"  command: {self.command}"]


def first_error_line(output: str) -> str:
    """The line that says what went wrong: a traceback's exception line, else the first line of output."""
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    if not lines:
        return "no output"
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        exceptions = [line for line in lines if not line[0].isspace() and not line.startswith(("Traceback", "During"))]
        line = exceptions[-1] if exceptions else lines[-1]
    else:
        line = lines[0]
    return re.sub(r"^(error|CommandError): ", "", line)


def preflight_fix(error: str, config: CrontabConfig, user: str | None) -> str:
    """The likely remedy for a preflight error line."""
    env_file = getattr(settings, "CRONJOBS_ENV_FILE", None)
    where = f"put it in {env_file}" if env_file else "set it in CRONTAB_COMMAND_PREFIX (VAR=value)"
    who = user or pwd.getpwuid(os.geteuid()).pw_name
    missing = re.search(r"\b([A-Z][A-Z0-9_]*) is not set", error)
    if missing:
        return f"{missing[1]} is not set under cron: {where}"
    if "Permission denied" in error:
        return (
            f"user {who} may not read or run what the line needs ({config.python}, {config.project_dir}): "
            "give that user access to the project and its virtualenv, or install the lines for a user who has it"
        )
    module = re.search(r"No module named '([^']+)'", error)
    if module:
        return missing_module_fix(module[1], config)
    if re.search(r"not found|No such file", error):
        return f"something the line runs is not found under cron (PATH={CRON_PATH}): use absolute paths"
    if re.search(r"database|connection|could not connect|no such table|does not exist", error, re.IGNORECASE):
        return f"the database is not reachable or not migrated under cron: set DATABASE_URL ({where.split(' ', 1)[1]})"
    return "run the command below by hand to see the whole error"


def missing_module_fix(module: str, config: CrontabConfig) -> str:
    """Why cron's Python cannot import `module`: it is found here only through PYTHONPATH, which cron
    does not pass on (the line's prefix must set it), or the lines run an interpreter without it."""
    entry = pythonpath_entry(module, config.project_dir)
    if entry is None:
        return (
            f"cron's Python ({config.python}) cannot import '{module}': set CRONTAB_PYTHON_EXECUTABLE to the "
            "python that has the project's packages (e.g. the virtualenv's)"
        )
    prefix = f"{config.prefix} PYTHONPATH={shlex.quote(os.environ['PYTHONPATH'])}".lstrip()
    reason = (
        f"'{module}' is importable here only through PYTHONPATH (from {entry}), which cron does not pass on "
        "(and an env file is read too late for it, once Python runs): set it in the lines' prefix, "
    )
    if os.environ.get("CRONTAB_COMMAND_PREFIX") is not None:  # the environment wins over the env file
        return reason + f"export CRONTAB_COMMAND_PREFIX={shlex.quote(prefix)} where you run `crontab add`"
    env_file = getattr(settings, "CRONJOBS_ENV_FILE", None)
    in_settings = f"CRONTAB_COMMAND_PREFIX = {prefix!r} in the settings"
    if not env_file:
        return reason + in_settings
    return reason + f"put the line {dotenv_line('CRONTAB_COMMAND_PREFIX', prefix)} in {env_file} (or {in_settings})"


def pythonpath_entry(module: str, project_dir: Path | None) -> str | None:
    """The PYTHONPATH entry this process finds top-level `module` in, when that entry is not the project
    directory (which the lines `cd` into and manage.py puts on sys.path); None otherwise."""
    entries = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    try:
        spec = importlib.util.find_spec(module.split(".")[0]) if entries else None
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        return None
    locations = [spec.origin] if spec.has_location else list(spec.submodule_search_locations or ())
    for entry in entries:
        root = Path(entry).resolve()
        if root != (project_dir and project_dir.resolve()) and any(
            Path(location).resolve().is_relative_to(root) for location in locations
        ):
            return entry
    return None


def dotenv_line(name: str, value: str) -> str:
    """`name=value` as an env file (python-dotenv) reads it back as `value`."""
    if not re.search(r"[\s'\"#\\]", value):
        return f"{name}={value}"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{name}="{escaped}"'


def preflight(job: Job, config: CrontabConfig, timeout: float = 120) -> PreflightFailure | None:
    """Run `job`'s installed line in check mode as cron would; None when it started cleanly."""
    user = crontab_user(config)
    command = preflight_command(job, config)
    try:
        argv = as_cron_argv(command, user)
    except KeyError:
        return PreflightFailure(f"no user named {user!r}", "fix the -u argument of CRONTAB_EXECUTABLE", command, "")
    try:
        result = subprocess.run(argv, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as exc:
        return PreflightFailure(str(exc), "run the command below by hand to see the whole error", shlex.join(argv), "")
    if result.returncode == 0:
        return None
    output = (result.stderr + result.stdout).decode("utf-8", "replace")
    error = first_error_line(output)
    return PreflightFailure(error, preflight_fix(error, config, user), shlex.join(argv), output)
