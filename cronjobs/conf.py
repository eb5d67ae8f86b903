"""Every CRONJOBS_* setting of the engine in one table: its default, what it accepts, and why it exists.

Read a setting with `conf.get("CRONJOBS_STOP_WAIT")`: the project's value when it is valid, else the
default when the project does not set it. An invalid value is reported by `manage.py check` as
cronjobs.E011 (`problems()`), and reading it raises ImproperlyConfigured with the same message, so a
process never runs on a value that check refuses. The reference is docs/operations.md ("Settings").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.validators import validate_email

E011 = "cronjobs.E011"  # an invalid CRONJOBS_* setting


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    error: Callable[[Any], str | None]  # why a value is refused, or None
    hint: str
    meaning: str


def _seconds(minimum: float, maximum: float, *, inclusive_minimum: bool = True) -> Callable[[Any], str | None]:
    def error(value: Any) -> str | None:
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        low_ok = number and (value >= minimum if inclusive_minimum else value > minimum)
        if not number or not low_ok or value > maximum:
            low = f"{'>=' if inclusive_minimum else '>'} {minimum:g}"
            return f"must be a number of seconds {low} and <= {maximum:g}, got {value!r}"
        return None

    return error


def _whole(minimum: int) -> Callable[[Any], str | None]:
    def error(value: Any) -> str | None:
        if type(value) is not int or value < minimum:
            return f"must be a whole number >= {minimum}, got {value!r}"
        return None

    return error


def _optional_text(value: Any) -> str | None:
    return None if value is None or isinstance(value, str) else f"must be a string or None, got {value!r}"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be True or False, got {value!r}"


def _emails(value: Any) -> str | None:
    if not isinstance(value, (list, tuple)):
        return f"must be a list of e-mail addresses, got {value!r}"
    for address in value:
        try:
            validate_email(address)
        except Exception:
            return f"{address!r} is not an e-mail address"
    return None


def _paths(value: Any) -> str | None:
    if not isinstance(value, (list, tuple)) or not all(isinstance(p, (str, os.PathLike)) for p in value):
        return f"must be a list of file paths, got {value!r}"
    return None


def _delays(value: Any) -> str | None:
    if not isinstance(value, (list, tuple)) or any(_seconds(0, 3600)(delay) for delay in value):
        return f"must be a list of pauses in seconds (each 0 to 3600), got {value!r}"
    return None


def _http_url(value: Any) -> str | None:
    from cronjobs.registry import is_http_url

    return None if is_http_url(value) else f"must be an http(s) URL, got {value!r}"


def _ping_template(value: Any) -> str | None:
    from cronjobs.registry import is_http_url

    if value is None:
        return None
    try:
        example = value.format(name="job")
    except (AttributeError, KeyError, IndexError, ValueError) as exc:
        example = f"<{type(exc).__name__}: {exc}>"
    return None if is_http_url(example) else f"{value!r} is not an http(s) URL with only {{name}} in it"


def default_max_concurrent() -> int:
    """Jobs one `crontab work` runs at once: twice the CPUs (jobs mostly wait on I/O), at least 4."""
    return max(4, 2 * (os.cpu_count() or 1))


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        # --- alerts (docs/alerts.md)
        Setting(
            "CRONJOBS_NOTIFY_AFTER",
            1,
            _whole(1),
            "e.g. CRONJOBS_NOTIFY_AFTER=3",
            "consecutive failures of a job before its failure mail (a job's notify_after option wins)",
        ),
        Setting("CRONJOBS_NOTIFY_EMAILS", [], _emails, "Comma-separated addresses.", "who gets failure mails"),
        Setting(
            "CRONJOBS_BASE_URL",
            "http://127.0.0.1:8000",
            _http_url,
            "e.g. https://crm.example.com",
            "base of the admin links in mails and of the fire endpoint in `crontab export`",
        ),
        Setting(
            "CRONJOBS_PING_URL_TEMPLATE",
            None,
            _ping_template,
            "e.g. https://hc-ping.com/<ping key>/{name}",
            "healthchecks-style ping URL for every job, {name} replaced",
        ),
        Setting("CRONJOBS_PING_TIMEOUT", 3, _seconds(0, 60, inclusive_minimum=False), "e.g. 3", "seconds per ping"),
        Setting("CRONJOBS_METRICS_TOKEN", None, _optional_text, "", "bearer token for /metrics"),
        # --- the fire endpoint (docs/deploy.md, "Platforms without cron")
        Setting(
            "CRONJOBS_FIRE_RATE_LIMIT",
            10,
            _whole(1),
            "e.g. 10",
            "POST /cron/fire/<name> requests one token may make for one job in a minute (per server process "
            "with the default local-memory cache)",
        ),
        # --- the run history
        Setting("CRONJOBS_RUN_RETENTION_DAYS", 30, _whole(1), "e.g. 30", "prune_job_runs deletes runs older than this"),
        # --- execution: the supervising parent (docs/faults.md)
        Setting(
            "CRONJOBS_STOP_WAIT",
            5.0,
            _seconds(0, 600, inclusive_minimum=False),
            "e.g. 5",
            "seconds between SIGTERM and SIGKILL when a job is stopped (timeout, lost lease, stop signal)",
        ),
        Setting(
            "CRONJOBS_SAVE_RETRY_DELAYS",
            (0.5, 1, 2, 5, 10, 20, 30, 60, 60, 60, 60),
            _delays,
            "e.g. (0.5, 2, 5)",
            "pauses between attempts to save an outcome the database refused (about five minutes in all)",
        ),
        Setting(
            "CRONJOBS_LEASE_SECONDS",
            5.0,
            _seconds(0.1, 3600),
            "e.g. 5",
            "how often a running run renews its lease; the lease expires after three missed renewals",
        ),
        Setting(
            "CRONJOBS_CLOCK_SKEW_WARN",
            2.0,
            _seconds(0, 86400),
            "e.g. 2",
            "a host whose clock is further than this from the database's is reported",
        ),
        Setting(
            "CRONJOBS_CLOCK_SKEW_MAX",
            300.0,
            _seconds(0, 86400, inclusive_minimum=False),
            "e.g. 300",
            "a host whose clock is further than this from the database's refuses to claim runs",
        ),
        # --- crontab work (docs/scheduling.md)
        Setting(
            "CRONJOBS_WORK_GRACE", 30.0, _seconds(0, 86400), "e.g. 30", "seconds running jobs get to finish on stop"
        ),
        Setting(
            "CRONJOBS_WORK_CATCH_UP",
            300.0,
            _seconds(0, 86400),
            "e.g. 300",
            "oldest missed minute a starting or waking `crontab work` still fires",
        ),
        Setting(
            "CRONJOBS_MAX_CONCURRENT",
            None,  # None: default_max_concurrent()
            lambda v: None if v is None else _whole(1)(v),
            "e.g. 8",
            "jobs one `crontab work` runs at once; the others wait in due order",
        ),
        Setting(
            "CRONJOBS_WATCH_FILES",
            [],
            _paths,
            "e.g. ['/etc/crm/cronjobs.py']",
            "more files whose change makes `crontab work` reload CRONJOBS",
        ),
        # --- crontab add
        Setting("CRONJOBS_PREFLIGHT", True, _boolean, "", "`crontab add` runs one installed line as cron would first"),
        Setting("CRONJOBS_ENV_FILE", None, _optional_text, "", "the env file named in preflight hints"),
    )
}


def get(name: str) -> Any:
    """The setting's value (its default when unset). ImproperlyConfigured when the value is refused."""
    spec = SETTINGS[name]
    value = getattr(settings, name, spec.default)
    error = spec.error(value)
    if error:
        raise ImproperlyConfigured(f"settings.{name} {error}")
    if name == "CRONJOBS_MAX_CONCURRENT" and value is None:
        return default_max_concurrent()
    return value


def lease_ttl() -> float:
    """Seconds a lease lasts without renewal: three renewal periods."""
    return 3 * float(get("CRONJOBS_LEASE_SECONDS"))


def problems() -> list:
    """Every CRONJOBS_* setting the project sets to a refused value, as registry Problems (cronjobs.E011)."""
    from cronjobs.registry import Problem

    found = []
    for name, spec in SETTINGS.items():
        error = spec.error(getattr(settings, name, spec.default))
        if error:
            found.append(Problem(E011, f"settings.{name}: {error}", spec.hint))
    return found
