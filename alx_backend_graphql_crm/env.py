"""One environment for every entry point: the env file under the process environment, settings errors as one line.

manage.py, wsgi.py, asgi.py, the Celery app and gunicorn.conf.py call `load_env_file()` before Django reads
its settings. python-dotenv (not django-environ): it only fills `os.environ`, so every process, and every
line `crontab add` installs (which `cd` into the project), sees the file the same way, while settings.py
keeps reading plain environment variables with its own small helpers.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

PROJECT_DIR = Path(__file__).resolve().parent.parent


class SettingsError(ImproperlyConfigured):
    """A variable of the environment is missing or wrong: reported as one line on stderr, exit 1."""


def env_file() -> Path:
    """The env file: the one CRM_ENV_FILE names, else `.env` in the project directory."""
    return Path(os.environ.get("CRM_ENV_FILE") or PROJECT_DIR / ".env")


def load_env_file() -> Path | None:
    """Put the env file's variables into os.environ; a variable already set wins. Returns the file, or None."""
    from dotenv import load_dotenv

    path = env_file()
    if not path.exists():
        if os.environ.get("CRM_ENV_FILE"):
            raise SettingsError(f"CRM_ENV_FILE names {path}, which does not exist")
        return None
    try:
        load_dotenv(path, override=False)
    except OSError as exc:
        raise SettingsError(f"cannot read the env file {path}: {exc.strerror or exc}") from None
    return path


@contextmanager
def one_line_errors():
    """A SettingsError inside the block is printed as one line on stderr and exits 1 (no traceback)."""
    try:
        yield
    except SettingsError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.stderr.flush()
        raise SystemExit(1) from None


def bootstrap(settings_module: str = "alx_backend_graphql_crm.settings") -> None:
    """What a server entry point (wsgi, asgi, Celery, gunicorn) does first: env file, then the settings."""
    with one_line_errors():
        load_env_file()
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
        from django.conf import settings

        settings.SECRET_KEY  # noqa: B018 - imports the settings now, so their errors surface here
