"""Failures reach people: every failed run is logged, mailed after N failures in a row, and pinged to a monitor.

Receivers of the runner's signals (cronjobs/signals.py), so every route (crontab line, `crontab
work`, Celery, admin, GraphQL, by hand) goes through this one module. What is sent and when, and the
settings: docs/alerts.md.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from datetime import datetime
from itertools import takewhile
from urllib.parse import quote, urlsplit, urlunsplit

from django.conf import settings
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db.models import Q
from django.dispatch import receiver
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from cronjobs import signals
from cronjobs.health import FAILED_STATUSES
from cronjobs.models import JobRun
from cronjobs.registry import E011, Job, Problem, UnknownJob, get_registry, is_http_url

# The one documented logger every failure is logged on (ERROR) and every recovery (INFO).
run_logger = logging.getLogger("cronjobs.runs")
logger = logging.getLogger(__name__)

# The statuses that alarm, as /health/cron/ counts them (cronjobs.health.FAILED_STATUSES).
ALERT_STATUSES = frozenset(FAILED_STATUSES)
PING_BODY_LIMIT = 10_000  # characters of a ping's POST body; longer summaries lose their middle
MAIL_TIMES_LIMIT = 50  # failure times listed in one mail
# The engine is reusable: a project that does not set these gets the documented defaults.
DEFAULTS = {
    "CRONJOBS_NOTIFY_AFTER": 1,
    "CRONJOBS_NOTIFY_EMAILS": [],
    "CRONJOBS_BASE_URL": "http://127.0.0.1:8000",
    "CRONJOBS_PING_URL_TEMPLATE": None,
    "CRONJOBS_PING_TIMEOUT": 3,
}


def setting(name: str):
    return getattr(settings, name, DEFAULTS[name])


def is_failure(run: JobRun) -> bool:
    return run.status in ALERT_STATUSES


def notify_after(job: Job | None) -> int:
    if job is not None and job.notify_after is not None:
        return job.notify_after
    return setting("CRONJOBS_NOTIFY_AFTER")


def previous_failures(run: JobRun, limit: int) -> list[JobRun]:
    """The failed runs of the job right before `run` (by finish time), newest first, at most `limit`.

    One query. Skips (disabled, still running) neither count nor break a streak; a success breaks
    it. Every recorded run counts, so each failed retry attempt is one failure.
    """
    ended_before = Q(finished_at__lt=run.finished_at) | Q(finished_at=run.finished_at, id__lt=run.pk)
    rows = (
        JobRun.objects.filter(ended_before, job_name=run.job_name)
        .exclude(pk=run.pk)
        .filter(status__in=[*ALERT_STATUSES, JobRun.Status.SUCCEEDED])
        .order_by("-finished_at", "-id")
        .only("id", "status", "result", "started_at", "finished_at")[:limit]
    )
    return list(takewhile(is_failure, rows))


# --- the receivers ---------------------------------------------------------------------------------
@receiver(signals.run_started, dispatch_uid="cronjobs.alerts.run_started")
def on_run_started(sender, run: JobRun, job: Job, **kwargs) -> None:
    """Send the /start ping beside the job, so a slow monitor never delays the job or inflates its
    recorded duration; the finish ping waits for it (so the monitor sees /start first)."""
    url = ping_url(job)
    if url:
        body = f"{job.name} run #{run.pk} started ({run.trigger} on {run.host} pid {run.pid})"
        thread = threading.Thread(target=ping, args=(url, "start", body), name="cronjobs-start-ping", daemon=True)
        _start_pings[run.pk] = thread
        thread.start()


# Start pings still in flight, by run id (removed when the run finishes).
_start_pings: dict[int, threading.Thread] = {}


def _wait_for_start_ping(run: JobRun) -> None:
    thread = _start_pings.pop(run.pk, None)
    if thread is not None:
        thread.join()  # bounded: a ping gives up after 2 x CRONJOBS_PING_TIMEOUT


@receiver(signals.run_finished, dispatch_uid="cronjobs.alerts.run_finished")
def on_run_finished(sender, run: JobRun, **kwargs) -> None:
    """Log, mail and ping one recorded outcome. Each step is guarded, so a mail server that is down
    never keeps the ping from going out."""
    failed = is_failure(run)
    if not failed and run.status != JobRun.Status.SUCCEEDED:
        _wait_for_start_ping(run)
        return  # a skip (disabled, still running) or a status alerts do not know: nothing to tell
    job = _registered(run.job_name)
    threshold = notify_after(job)
    before = previous_failures(run, threshold)
    steps = [log_failure, mail_failure] if failed else [log_recovery, mail_recovery]
    for step in steps:
        _guarded(step, run, before, threshold)
    _wait_for_start_ping(run)
    url = ping_url(job) if job is not None else None
    if url:
        _guarded(ping, url, "fail" if failed else "", run_summary(run))


def _registered(name: str) -> Job | None:
    try:
        return get_registry().get(name)
    except UnknownJob:  # a run of a job since removed from CRONJOBS (closed by the reaper)
        return None


def _guarded(step, *args) -> None:
    try:
        step(*args)
    except Exception:
        logger.exception("cronjobs: %s failed", getattr(step, "__name__", step))


# --- logging ---------------------------------------------------------------------------------------
def log_failure(run: JobRun, before: list[JobRun], threshold: int) -> None:
    """One ERROR record on `cronjobs.runs`, its traceback as exc_info-style text (a formatter prints it
    after the message) and every field as a record attribute (Sentry shows them as extra data)."""
    if not run_logger.isEnabledFor(logging.ERROR):
        return
    fields = _record_fields(run)
    # Job name and status in the template (names hold no '%'): Sentry groups events by it, one issue per job.
    message = f"{run.job_name} run #%s {run.status}: %s (trigger %s, host %s, duration %.3fs, %s failure(s) in a row)"
    streak = f"{len(before) + 1}{'+' if len(before) == threshold else ''}"
    args = (run.pk, _first_line(run.result), run.trigger, run.host, fields["duration"], streak)
    record = run_logger.makeRecord(run_logger.name, logging.ERROR, __file__, 0, message, args, None, extra=fields)
    # An interrupted run's traceback only says where the job was when someone stopped it: the record
    # stays one line (the history and the `traceback` attribute keep it), as `crontab run` reports a stop.
    if run.status != JobRun.Status.INTERRUPTED:
        record.exc_text = run.traceback.rstrip("\n") or None
    run_logger.handle(record)


def log_recovery(run: JobRun, before: list[JobRun], threshold: int) -> None:
    if not before:
        return
    count = f"{len(before)}{'+' if len(before) == threshold else ''}"
    fields = _record_fields(run)
    run_logger.info(
        "%s recovered: run #%s succeeded after %s failed run(s) (trigger %s, host %s, duration %.3fs)",
        *(run.job_name, run.pk, count, run.trigger, run.host, fields["duration"]),
        extra=fields,
    )


def _record_fields(run: JobRun) -> dict:
    return {
        "job": run.job_name,
        "run_id": run.pk,
        "status": str(run.status),
        "trigger": run.trigger,
        "host": run.host,
        "duration": run.duration.total_seconds() if run.duration is not None else 0.0,
        "traceback": run.traceback,
    }


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0][:300]


# --- mail ------------------------------------------------------------------------------------------
def notify_emails() -> list[str]:
    """CRONJOBS_NOTIFY_EMAILS, or the addresses in ADMINS when it is empty."""
    if setting("CRONJOBS_NOTIFY_EMAILS"):
        return list(setting("CRONJOBS_NOTIFY_EMAILS"))
    return [admin if isinstance(admin, str) else admin[1] for admin in settings.ADMINS]


def mail_failure(run: JobRun, before: list[JobRun], threshold: int) -> None:
    """One mail when the streak reaches `threshold` exactly; none for further failures of the streak."""
    recipients = notify_emails()
    if len(before) + 1 != threshold or not recipients:
        return
    failures = [run, *before][:MAIL_TIMES_LIMIT]
    times = "\n".join(f"  run #{f.pk} {f.status} at {_local(f.finished_at)}" for f in failures)
    body = (
        f"Job {run.job_name} failed {threshold} time(s) in a row.\n\n"
        f"Last run: #{run.pk} {run.status} ({run.trigger} on {run.host}): {_first_line(run.result)}\n"
        f"{run_link(run)}\n\n"
        f"Failures, newest first:\n{times}\n\n"
        f"Traceback of the last run:\n{run.traceback or '(none: the job did not run)'}\n\n"
        "No further mail is sent for this streak; one comes when the job next succeeds.\n"
    )
    subject = f"[cronjobs] {run.job_name} failed {threshold} time(s) in a row"
    send_mail(subject, body, None, recipients)


def mail_recovery(run: JobRun, before: list[JobRun], threshold: int) -> None:
    """One mail on the success that ends a streak which reached `threshold` (and so was mailed)."""
    recipients = notify_emails()
    if len(before) < threshold or not recipients:
        return
    body = (
        f"Job {run.job_name} succeeded again: run #{run.pk} at {_local(run.finished_at)} "
        f"({run.trigger} on {run.host}), after {len(before)}{'+' if len(before) == threshold else ''} "
        f"failed run(s); the last failure was run #{before[0].pk} at {_local(before[0].finished_at)}.\n"
        f"{run_link(run)}\n"
    )
    send_mail(f"[cronjobs] {run.job_name} recovered", body, None, recipients)


def run_link(run: JobRun) -> str:
    """The run's page in the admin, under CRONJOBS_BASE_URL."""
    try:
        path = reverse("admin:cronjobs_jobrun_change", args=[run.pk])
    except NoReverseMatch:
        return "(the admin is not installed: no link)"
    return setting("CRONJOBS_BASE_URL").rstrip("/") + path


def _local(moment: datetime | None) -> str:
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z") if moment else "?"


# --- monitor pings (healthchecks.io protocol) -----------------------------------------------------
def ping_url(job: Job) -> str | None:
    """The job's `ping_url` option, else CRONJOBS_PING_URL_TEMPLATE with {name}; None for no pings."""
    if job.ping_url is not None:
        return job.ping_url or None
    template = setting("CRONJOBS_PING_URL_TEMPLATE")
    return template.format(name=quote(job.name, safe="")) if template else None


def run_summary(run: JobRun) -> str:
    """The POST body of a finish ping: what happened, the result, the traceback; at most PING_BODY_LIMIT."""
    duration = run.duration.total_seconds() if run.duration is not None else 0.0
    text = f"{run.job_name} run #{run.pk} {run.status} in {duration:.3f}s ({run.trigger} on {run.host})\n"
    text += run.result + (f"\n\n{run.traceback}" if run.traceback else "")
    return _cap(text, PING_BODY_LIMIT)


def _cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    marker = f"\n[... {len(text) - limit} characters cut ...]\n"
    keep = limit - len(marker)
    return text[: keep // 2] + marker + text[len(text) - (keep - keep // 2) :]


def ping(url: str, kind: str, body: str) -> bool:
    """POST `body` to `<url>/<kind>` (`<url>` when kind is ""). True when the monitor answered 2xx.

    At most two attempts of CRONJOBS_PING_TIMEOUT seconds each (the second only after a connection
    error, a timeout or a 5xx), so a ping never delays a run by more than twice that. Never raises:
    a monitor that is down is logged as a warning, never a change to the run.
    """
    target = ping_target(url, kind)
    timeout = float(setting("CRONJOBS_PING_TIMEOUT"))
    error = ""
    for _attempt in range(2):
        error, retry = _post_within(target, body.encode(), timeout)
        if not error:
            return True
        if not retry:
            break
    where = urlsplit(target)
    # Not the whole URL: its path is the check's secret (anyone who knows it can ping).
    logger.warning(
        "cronjobs: monitor ping %s to %s://%s failed: %s", kind or "success", where.scheme, where.netloc, error
    )
    return False


def ping_target(url: str, kind: str) -> str:
    """`<url>/<kind>`, before any query string (healthchecks' `?create=1`, `?rid=`)."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/") + (f"/{kind}" if kind else "")
    return urlunsplit(parts._replace(path=path or "/"))


def _post_within(target: str, data: bytes, timeout: float) -> tuple[str, bool]:
    """One POST, abandoned after `timeout` seconds whatever the server does (a socket timeout alone
    restarts with every byte a slow server sends). Returns (error or "", whether a retry may help)."""
    outcome: list[tuple[str, bool]] = []

    def post() -> None:
        request = urllib.request.Request(  # noqa: S310 - the URL is validated as http(s)
            target, data=data, method="POST", headers={"Content-Type": "text/plain; charset=utf-8"}
        )
        try:
            # The socket may wait a little longer than the join below: the caller's bound is the join.
            with urllib.request.urlopen(request, timeout=timeout + 1) as response:  # noqa: S310
                outcome.append(("", False) if 200 <= response.status < 300 else (f"HTTP {response.status}", True))
        except urllib.error.HTTPError as exc:
            outcome.append((f"HTTP {exc.code}", exc.code >= 500))
        except Exception as exc:  # refused, reset, DNS, timeout: all worth one more try
            outcome.append((f"{type(exc).__name__}: {exc}", True))

    thread = threading.Thread(target=post, name="cronjobs-ping", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return f"no answer within {timeout:g}s", True
    return outcome[0]


# --- configuration checks (manage.py check) --------------------------------------------------------
def settings_problems() -> list[Problem]:
    """What is wrong with the CRONJOBS_NOTIFY_* and CRONJOBS_PING_* settings."""
    problems = []

    def bad(setting: str, msg: str, hint: str) -> None:
        problems.append(Problem(E011, f"settings.{setting}: {msg}", hint))

    after = setting("CRONJOBS_NOTIFY_AFTER")
    if type(after) is not int or after < 1:
        bad("CRONJOBS_NOTIFY_AFTER", f"must be a whole number >= 1, got {after!r}", "e.g. CRONJOBS_NOTIFY_AFTER=3")
    for address in setting("CRONJOBS_NOTIFY_EMAILS") or ():
        try:
            validate_email(address)
        except Exception:
            bad("CRONJOBS_NOTIFY_EMAILS", f"{address!r} is not an e-mail address", "Comma-separated addresses.")
    template = setting("CRONJOBS_PING_URL_TEMPLATE")
    if template:
        try:
            example = template.format(name="job")
        except (KeyError, IndexError, ValueError) as exc:
            example = f"<{type(exc).__name__}: {exc}>"
        if not is_http_url(example):
            hint = "e.g. https://hc-ping.com/<ping key>/{name}"
            bad("CRONJOBS_PING_URL_TEMPLATE", f"{template!r} is not an http(s) URL with only {{name}} in it", hint)
    timeout = setting("CRONJOBS_PING_TIMEOUT")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 60:
        bad("CRONJOBS_PING_TIMEOUT", f"must be a number of seconds in (0, 60], got {timeout!r}", "e.g. 3")
    return problems
