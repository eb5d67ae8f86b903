"""`crontab export`: CRONJOBS as the definitions external schedulers need (Kubernetes, Cloud Scheduler, GitHub).

Three formats, one definition per enabled job (disabled jobs are left out, with a note):

- ``k8s``: one ``batch/v1`` CronJob per job, multi-document YAML. The container runs
  ``python manage.py crontab run <name> --scheduled`` in the project's image: the run happens in the
  pod, its exit code is the outcome (a failed run is a failed Kubernetes Job), and no token or
  network path to the web service is needed.
- ``cloud-scheduler``: JSON ``{"jobs": [Job, ...]}``, each a Cloud Scheduler REST ``Job`` whose HTTP
  target is ``POST <base URL>/cron/fire/<name>``. The bearer token is never written: the
  Authorization header holds the placeholder ``${CRONJOBS_FIRE_TOKEN}``, filled in when applying.
- ``github-actions``: one workflow; each job has its crons in ``on: schedule:`` and a step that curls
  the fire endpoint with the repository secret ``CRONJOBS_FIRE_TOKEN``. The crons are UTC: a job in
  a zone with a fixed UTC offset is converted exactly, one in a zone with daylight saving time is
  refused.

Names: each platform allows fewer characters than a job name (``[A-Za-z_][A-Za-z0-9_.-]*``), so a
name is mapped: kept as is where the platform allows it, else a readable form plus a hash of the
name (stable: it depends on the name alone). ``check`` reads a previous export back and compares it
with the current one, job by job.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import math
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit
from zoneinfo import ZoneInfo

import yaml
from croniter import croniter
from django.conf import settings
from django.utils import timezone

from cronjobs.registry import Job, is_http_url

FORMATS = ("k8s", "cloud-scheduler", "github-actions")
FIRE_PATH = "/cron/fire/"
TOKEN_NAME = "CRONJOBS_FIRE_TOKEN"  # the GitHub secret, and the placeholder of the Cloud Scheduler header
TOKEN_PLACEHOLDER = "${" + TOKEN_NAME + "}"
JOB_ANNOTATION = "cronjobs/job-name"  # the exact CRONJOBS name, on every CronJob
MANAGED_BY = {"app.kubernetes.io/managed-by": "django-cronjobs"}
# Settings (options of the command win); the engine is reusable, so each has a default here.
DEFAULTS = {
    "CRONJOBS_BASE_URL": "http://127.0.0.1:8000",
    "CRONJOBS_EXPORT_IMAGE": "crm:latest",
    "CRONJOBS_EXPORT_NAMESPACE": "default",
    "CRONJOBS_EXPORT_ENV_SECRET": "crm-env",
    "CRONJOBS_EXPORT_GCP_PROJECT": "",
    "CRONJOBS_EXPORT_GCP_LOCATION": "",
}
# Kubernetes: the controller starts a CronJob's runs every 10 s, so a shorter deadline may skip them.
MIN_STARTING_DEADLINE = 10
# Kubernetes: activeDeadlineSeconds is a backstop behind the engine's own timeout (which stops and
# records the run): room for the engine to stop the job, record it, and for the pod to start.
DEADLINE_MARGIN = 300
# Cloud Scheduler: the endpoint answers at once (202), so an attempt is short; retries cover a
# deployment or a cold start, and never outlive the job's grace (a later run would be `missed`).
ATTEMPT_DEADLINE = "60s"
DELIVERY_RETRIES = 3
MIN_BACKOFF, MAX_BACKOFF = 10, 60
GITHUB_MIN_INTERVAL = timedelta(minutes=5)
# libyaml's C loader and dumper when PyYAML was built with it: 20-50x faster at 10,000 jobs; same YAML.
YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # GitHub runs a schedule at most every 5 minutes
HEADER = (
    "# Written by `python manage.py crontab export --format {format}` from CRONJOBS; regenerate it rather than\n"
    "# editing it. `crontab export --format {format} --check FILE` lists what changed since (docs/deploy.md).\n"
)


class ExportError(Exception):
    """The export cannot be written or checked; each line names one problem (a job, an option, a file)."""

    def __init__(self, *lines: str):
        super().__init__("; ".join(lines))
        self.lines = list(lines)


@dataclass(frozen=True)
class Target:
    """Where and how the definitions will run: the format and its platform's settings."""

    format: str
    base_url: str
    image: str
    namespace: str
    env_secret: str  # "" for none
    project: str
    location: str


@dataclass
class Export:
    """The text to write, the names of the jobs it defines, and notes for stderr."""

    text: str
    jobs: list[str]
    notes: list[str] = field(default_factory=list)


# --- settings and options ----------------------------------------------------------------------------
def setting(name: str) -> Any:
    return getattr(settings, name, DEFAULTS[name])


_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_GCP_PROJECT = re.compile(r"^[A-Za-z0-9.:-]+$")
_GCP_LOCATION = re.compile(r"^[a-z][a-z0-9-]*$")


def target_from(options: Mapping[str, Any]) -> tuple[Target, list[str]]:
    """The target the command's options (else the settings) describe, and notes; ExportError if unusable."""
    fmt = options.get("format")
    if fmt not in FORMATS:
        given = f"unknown --format {fmt!r}" if fmt else "--format is required"
        raise ExportError(f"{given}: use one of {', '.join(FORMATS)}")

    def pick(option: str, name: str) -> str:
        value = options.get(option)
        value = setting(name) if value is None else value
        return "" if value is None else str(value).strip()

    target = Target(
        format=fmt,
        base_url=pick("base_url", "CRONJOBS_BASE_URL").rstrip("/"),
        image=pick("image", "CRONJOBS_EXPORT_IMAGE"),
        namespace=pick("namespace", "CRONJOBS_EXPORT_NAMESPACE"),
        env_secret=pick("env_secret", "CRONJOBS_EXPORT_ENV_SECRET"),
        project=pick("project", "CRONJOBS_EXPORT_GCP_PROJECT"),
        location=pick("location", "CRONJOBS_EXPORT_GCP_LOCATION"),
    )
    problems = _k8s_problems(target) if fmt == "k8s" else _http_problems(target)
    if problems:
        raise ExportError(*problems)
    notes = []
    if fmt != "k8s" and urlsplit(target.base_url).scheme == "http":
        notes.append(
            f"note: the base URL {target.base_url} is plain http: the bearer token would cross the network unencrypted"
        )
    return target, notes


def _k8s_problems(target: Target) -> list[str]:
    problems = []
    if not target.image or any(c.isspace() for c in target.image):
        problems.append(
            f"--image {target.image!r}: give the image that holds this project, e.g. registry.example.com/crm:1.4"
        )
    if not _DNS_LABEL.match(target.namespace):
        problems.append(f"--namespace {target.namespace!r} is not a Kubernetes namespace name (a-z, 0-9, '-')")
    if target.env_secret and not _DNS_SUBDOMAIN.match(target.env_secret):
        problems.append(f"--env-secret {target.env_secret!r} is not a Kubernetes Secret name (a-z, 0-9, '-', '.')")
    return problems


def _http_problems(target: Target) -> list[str]:
    """The fire endpoint must be reachable by a scheduler on another machine."""
    problems = []
    url = target.base_url
    if not is_http_url(url) or urlsplit(url).query or urlsplit(url).fragment:
        problems.append(f"base URL {url!r} is not an http(s) URL: pass --base-url https://crm.example.com")
    elif _is_loopback(urlsplit(url).hostname or ""):
        problems.append(
            f"base URL {url} is this machine only, and the scheduler runs elsewhere: pass --base-url "
            "https://crm.example.com or set CRONJOBS_BASE_URL to the address the site is reached at"
        )
    if target.format == "cloud-scheduler":
        if not _GCP_PROJECT.match(target.project):
            problems.append(
                f"--project {target.project!r}: give the Google Cloud project id (or set CRONJOBS_EXPORT_GCP_PROJECT)"
            )
        if not _GCP_LOCATION.match(target.location):
            problems.append(
                f"--location {target.location!r}: give the Cloud Scheduler region, e.g. europe-west1 "
                "(or set CRONJOBS_EXPORT_GCP_LOCATION)"
            )
    return problems


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- names --------------------------------------------------------------------------------------------
def _hashed(readable: str, name: str, max_length: int) -> str:
    """`readable` cut to fit, plus the first 8 hex digits of the name's SHA-256: one name, one result."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{readable[: max_length - 9].strip('-')}-{digest}".lstrip("-")


_K8S_PLAIN = re.compile(r"^[a-z][a-z0-9_]*[a-z0-9]$|^[a-z]$")
K8S_MAX_NAME = 52  # a CronJob's name: the controller adds 11 characters to name its Jobs (max 63)


def k8s_name(name: str) -> str:
    """A CronJob name (a DNS label of at most 52 characters) for a job name.

    A lower-case name of letters, digits and '_' maps to itself with '_' as '-' (log_crm_heartbeat ->
    log-crm-heartbeat); any other name (upper case, '.', '-', too long) becomes its lower-case form with
    '-' for the rest plus a hash of the exact name (My.Job -> my-job-<8 hex>), so two job names never
    share a CronJob name.
    """
    if _K8S_PLAIN.match(name) and len(name) <= K8S_MAX_NAME:
        return name.replace("_", "-")
    readable = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return _hashed(readable, name, K8S_MAX_NAME)


def external_id(name: str) -> str:
    """A Cloud Scheduler job id or a GitHub job id ([A-Za-z0-9_-], starting like the name): the name, or
    with '.' as '-' plus a hash of the name when it has a '.'."""
    if "." not in name:
        return name
    return _hashed(name.replace(".", "-"), name, 100)


def fire_url(base_url: str, name: str) -> str:
    return f"{base_url}{FIRE_PATH}{quote(name, safe='')}"


def _unique(jobs: list[Job], name_of) -> list[str]:
    """Problems where two jobs would get one platform name (only a name made to collide can)."""
    seen: dict[str, str] = {}
    problems = []
    for job in jobs:
        mapped = name_of(job.name)
        if mapped in seen:
            problems.append(f"jobs {seen[mapped]!r} and {job.name!r} would both be named {mapped!r}: rename one")
        seen.setdefault(mapped, job.name)
    return problems


# --- the export -----------------------------------------------------------------------------------------
def export(jobs: Iterable[Job], target: Target) -> Export:
    """The definitions of every enabled job for `target`; ExportError lists every job that cannot be exported."""
    jobs = list(jobs)
    enabled = [job for job in jobs if job.enabled]
    notes = [f"left out {job.name}: disabled (enabled: False)" for job in jobs if not job.enabled]
    notes += [
        f"note: {job.name}: its shell suffix {job.suffix!r} belongs to crontab lines; "
        f"{target.format} runs the job without it"
        for job in enabled
        if job.suffix
    ]
    render = {"k8s": _render_k8s, "cloud-scheduler": _render_cloud_scheduler, "github-actions": _render_github}
    text = render[target.format](enabled, target)
    return Export(text=text, jobs=[job.name for job in enabled], notes=notes)


def _render_k8s(jobs: list[Job], target: Target) -> str:
    problems = _unique(jobs, k8s_name)
    if problems:
        raise ExportError(*problems)
    documents = [cronjob(job, target) for job in jobs]
    return HEADER.format(format="k8s") + yaml.dump_all(
        documents, Dumper=YAML_DUMPER, sort_keys=False, explicit_start=True, width=10_000
    )


def container_command(job: Job) -> list[str]:
    """What a CronJob's container runs: the job through the runner, claiming its scheduled minute."""
    return ["python", "manage.py", "crontab", "run", job.name, "--scheduled"]


def cronjob(job: Job, target: Target) -> dict[str, Any]:
    """One batch/v1 CronJob for `job`."""
    annotations = {JOB_ANNOTATION: job.name}
    if job.description:
        annotations["cronjobs/description"] = job.description
    spec: dict[str, Any] = {
        "schedule": job.cron_expression,
        "timeZone": job.zone.key,
        "concurrencyPolicy": "Allow" if job.allow_overlap else "Forbid",
    }
    if job.grace is not None:
        spec["startingDeadlineSeconds"] = max(MIN_STARTING_DEADLINE, math.ceil(job.grace))
    container: dict[str, Any] = {"name": "job", "image": target.image, "command": container_command(job)}
    if target.env_secret:
        container["envFrom"] = [{"secretRef": {"name": target.env_secret}}]
    job_spec: dict[str, Any] = {"backoffLimit": 0}
    if job.timeout is not None:
        job_spec["activeDeadlineSeconds"] = active_deadline(job)
    job_spec["template"] = {
        "metadata": {"labels": dict(MANAGED_BY)},
        "spec": {"restartPolicy": "Never", "containers": [container]},
    }
    spec["jobTemplate"] = {"spec": job_spec}
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": k8s_name(job.name),
            "namespace": target.namespace,
            "labels": dict(MANAGED_BY),
            "annotations": annotations,
        },
        "spec": spec,
    }


def active_deadline(job: Job) -> int:
    """Seconds after which Kubernetes stops the pod: every attempt's timeout and stop wait, the longest
    backoffs between them, and DEADLINE_MARGIN. The engine's own timeout always comes first."""
    stop_wait = float(getattr(settings, "CRONJOBS_STOP_WAIT", 5.0))
    backoffs = sum(min(job.retry_backoff * 2**attempt, job.retry_backoff_max) for attempt in range(job.retries))
    return math.ceil((job.retries + 1) * (job.timeout + stop_wait) + backoffs) + DEADLINE_MARGIN


def _render_cloud_scheduler(jobs: list[Job], target: Target) -> str:
    problems = _unique(jobs, external_id)
    if problems:
        raise ExportError(*problems)
    return json.dumps({"jobs": [scheduler_job(job, target) for job in jobs]}, indent=2) + "\n"


def scheduler_job(job: Job, target: Target) -> dict[str, Any]:
    """One Cloud Scheduler REST Job: an HTTP target POSTing to the fire endpoint, in the job's zone."""
    parent = f"projects/{target.project}/locations/{target.location}"
    retries = DELIVERY_RETRIES if job.grace is None or job.grace >= MIN_BACKOFF else 0
    retry_config: dict[str, Any] = {"retryCount": retries}
    if retries:
        retry_config.update(minBackoffDuration=f"{MIN_BACKOFF}s", maxBackoffDuration=f"{MAX_BACKOFF}s", maxDoublings=2)
        if job.grace is not None:
            retry_config["maxRetryDuration"] = f"{math.ceil(job.grace)}s"
    resource = {"name": f"{parent}/jobs/{external_id(job.name)}"}
    if job.description:
        resource["description"] = job.description[:500]
    resource.update(
        schedule=job.cron_expression,
        timeZone=job.zone.key,
        httpTarget={
            "uri": fire_url(target.base_url, job.name),
            "httpMethod": "POST",
            "headers": {"Authorization": f"Bearer {TOKEN_PLACEHOLDER}"},
        },
        retryConfig=retry_config,
        attemptDeadline=ATTEMPT_DEADLINE,
    )
    return resource


def _render_github(jobs: list[Job], target: Target) -> str:
    crons: dict[str, list[str]] = {}
    problems = _unique(jobs, external_id)
    for job in jobs:
        try:
            crons[job.name] = github_crons(job)
        except ExportError as exc:
            problems.extend(exc.lines)
    if problems:
        raise ExportError(*problems)
    schedule = sorted({cron for job_crons in crons.values() for cron in job_crons})
    workflow = {
        "name": "CRONJOBS",
        "on": {"schedule": [{"cron": cron} for cron in schedule]},
        "permissions": {},
        "jobs": {external_id(job.name): github_job(job, crons[job.name], target) for job in jobs},
    }
    return HEADER.format(format="github-actions") + yaml.dump(
        workflow, Dumper=YAML_DUMPER, sort_keys=False, width=10_000
    )


def github_job(job: Job, crons: list[str], target: Target) -> dict[str, Any]:
    """A workflow job that fires `job` when one of its UTC crons triggered the workflow."""
    condition = " || ".join(f"github.event.schedule == '{cron}'" for cron in crons)
    curl = (
        "curl --fail-with-body --silent --show-error --max-time 60 --retry 3 --retry-connrefused "
        f'-X POST -H "Authorization: Bearer ${TOKEN_NAME}" {fire_url(target.base_url, job.name)}'
    )
    return {
        "name": job.name,
        "if": condition,
        "runs-on": "ubuntu-latest",
        "timeout-minutes": 5,
        "env": {"CRONJOBS_JOB": job.name, "CRONJOBS_SCHEDULE": job.schedule, "CRONJOBS_TIMEZONE": job.zone.key},
        "steps": [
            {
                "name": f"POST {FIRE_PATH}{job.name}",
                "env": {TOKEN_NAME: "${{ secrets." + TOKEN_NAME + " }}"},
                "run": curl,
            }
        ],
    }


# --- GitHub's UTC crons ------------------------------------------------------------------------------
def github_crons(job: Job) -> list[str]:
    """The UTC crons that fire `job` at its due minutes; ExportError (one line) when none do exactly."""
    offsets = zone_offsets(job.zone.key, timezone.now().year)
    if len(offsets) > 1:
        shown = " / ".join(_format_offset(o) for o in sorted(offsets))
        raise ExportError(
            f"{job.name}: cannot be exported to github-actions: its zone {job.zone.key} changes its UTC offset "
            f"during the year ({shown}, daylight saving time) and GitHub's crons here are UTC, so no cron fires "
            "it at the same local time all year (use k8s or cloud-scheduler, which take the zone, or a fixed zone)"
        )
    offset = next(iter(offsets))
    if offset % timedelta(minutes=1):
        raise ExportError(
            f"{job.name}: cannot be exported to github-actions: {job.zone.key} is not a whole minute off UTC"
        )
    if min_interval(job.cron_expression) < GITHUB_MIN_INTERVAL:
        raise ExportError(
            f"{job.name}: cannot be exported to github-actions: {job.schedule!r} fires less than 5 minutes apart, "
            "and GitHub runs a schedule at most every 5 minutes"
        )
    crons = shift_cron(job.cron_expression, int(offset / timedelta(minutes=1)))
    if crons is None:
        raise ExportError(
            f"{job.name}: cannot be exported to github-actions: in UTC ({_format_offset(offset)} from "
            f"{job.zone.key}) some of its times fall on another day, and its day-of-month or month field "
            "cannot move by a day exactly"
        )
    return crons


@lru_cache(maxsize=256)
def zone_offsets(key: str, year: int) -> frozenset[timedelta]:
    """Every UTC offset `key` has over `year` and the next (sampled hourly, as system_crontab does)."""
    zone = ZoneInfo(key)
    moment, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 2, 1, 1, tzinfo=UTC)
    offsets = set()
    while moment < end:
        offsets.add(moment.astimezone(zone).utcoffset())
        moment += timedelta(hours=1)
    return frozenset(offsets)


def _format_offset(offset: timedelta) -> str:
    minutes = int(offset / timedelta(minutes=1))
    sign = "-" if minutes < 0 else "+"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


@lru_cache(maxsize=1024)
def min_interval(expression: str) -> timedelta:
    """The shortest time between two fires of `expression` (over its first 400 fires from 2024)."""
    minutes = croniter.expand(expression)[0][0]
    if minutes != ["*"] and len(minutes) == 1:
        return timedelta(hours=1)  # one minute of the hour: fires are at least an hour apart
    times = croniter(expression, datetime(2024, 1, 1))
    previous = times.get_next(datetime)
    shortest = timedelta.max
    for _ in range(400):
        moment = times.get_next(datetime)
        shortest = min(shortest, moment - previous)
        previous = moment
    return shortest


_LIMITS = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


def shift_cron(expression: str, offset_minutes: int) -> list[str] | None:
    """The crons, in UTC, of `expression` read in a zone `offset_minutes` ahead of UTC.

    Minutes and hours move by the offset; a time that moves to the previous or next day moves its
    weekday too, which is exact only when day-of-month and month are `*` (else None). Names become
    numbers and Sunday 7 becomes 0, as GitHub documents 0-6 only.
    """
    fields = expression.split()
    expanded = croniter.expand(expression)[0]
    if offset_minutes == 0:
        return [" ".join(_numeric(fields[i], expanded[i], i) for i in range(5))]
    minutes, hours = (
        range(lo, hi + 1) if values == ["*"] else values
        for values, (lo, hi) in zip(expanded[:2], _LIMITS[:2], strict=True)
    )
    days: dict[int, dict[int, set[int]]] = defaultdict(lambda: defaultdict(set))  # day shift -> minute -> hours
    for hour in hours:
        for minute in minutes:
            shift, moment = divmod(hour * 60 + minute - offset_minutes, 1440)
            days[shift][moment % 60].add(moment // 60)
    lines = []
    for shift in sorted(days):
        if shift and (expanded[2] != ["*"] or expanded[3] != ["*"]):
            return None
        dom, month = (_numeric(fields[i], expanded[i], i) for i in (2, 3))
        weekday = _numeric(fields[4], expanded[4], 4)
        if shift and expanded[4] != ["*"]:
            weekday = _render({(day + shift) % 7 for day in expanded[4]}, 4, star=False)
        by_hours: dict[frozenset[int], set[int]] = defaultdict(set)
        for minute, hour_set in days[shift].items():
            by_hours[frozenset(hour_set)].add(minute)
        for hour_set, minute_set in sorted(by_hours.items(), key=lambda item: (min(item[0]), min(item[1]))):
            lines.append(f"{_render(minute_set, 0)} {_render(hour_set, 1)} {dom} {month} {weekday}")
    return lines


def _numeric(text: str, values: list, position: int) -> str:
    """A field as written when it has only numbers (Sunday as 0), else its values written out."""
    if not re.search(r"[a-z]", text, re.IGNORECASE) and not (position == 4 and re.search(r"(?<![/\d])7", text)):
        return text
    return "*" if values == ["*"] else _render(set(values), position, star=text.startswith("*"))


def _render(values: set[int], position: int, star: bool = True) -> str:
    """A set of values as a cron field: `*`, `*/step`, or ranges and single values.

    `star` False never writes a field starting with `*`: cron reads day-of-month and day-of-week as
    "either matches" only when neither starts with `*`, so that must not change.
    """
    low, high = _LIMITS[position]
    ordered = sorted(values)
    if star and ordered == list(range(low, high + 1)):
        return "*"
    if star and len(ordered) > 2 and ordered[0] == low:
        step = ordered[1] - ordered[0]
        if ordered == list(range(low, high + 1, step)):
            return f"*/{step}"
    parts, start = [], 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or ordered[i] != ordered[i - 1] + 1:
            run = ordered[start:i]
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 2 else ",".join(map(str, run)))
            start = i
    return ",".join(parts)


# --- --check ------------------------------------------------------------------------------------------
@dataclass
class Comparison:
    """A previous export against the current one, job by job."""

    added: list[str]
    changed: dict[str, list[str]]
    removed: list[str]
    kept: list[str]
    platform_names: dict[str, str] = field(default_factory=dict)  # what to delete for a removed job

    @property
    def equal(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def report(self) -> list[str]:
        lines = [f"added    {name}" for name in self.added]
        lines += [f"changed  {name}: {'; '.join(details)}" for name, details in self.changed.items()]
        lines += [f"removed  {name}{self._platform_name(name)}" for name in self.removed]
        lines.append(f"kept     {', '.join(self.kept) if self.kept else '-'}")
        return lines

    def _platform_name(self, name: str) -> str:
        return f" ({self.platform_names[name]})" if name in self.platform_names else ""

    def summary(self) -> str:
        jobs = [name for name in self.changed if not name.startswith("(")]
        others = [name.strip("()") for name in self.changed if name.startswith("(")]
        return f"{len(self.added)} added, {len(jobs)} changed, {len(self.removed)} removed" + "".join(
            f"; {other} differ" for other in others
        )


def check(path: str, current: Export, fmt: str) -> Comparison:
    """Compare the export in the file `path` with `current`; ExportError when the file cannot be read as one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"--check {path}: cannot read it: {exc.strerror or exc}") from exc
    previous = definitions(text, fmt, path)
    comparison = compare(previous, definitions(current.text, fmt, "the current export"))
    comparison.platform_names = {name: platform_name(fmt, previous[name]) for name in comparison.removed}
    comparison.platform_names = {name: shown for name, shown in comparison.platform_names.items() if shown}
    return comparison


def platform_name(fmt: str, definition: Any) -> str:
    """What the platform calls a job's definition, for deleting it there ("" where the file is all there is)."""
    if fmt == "k8s":
        return f"CronJob {_dig(definition, 'metadata', 'name')}"
    if fmt == "cloud-scheduler":
        return f"Cloud Scheduler job {str(_dig(definition, 'name')).rsplit('/', 1)[-1]}"
    return ""


def definitions(text: str, fmt: str, source: str) -> dict[str, Any]:
    """An export's text as {job name: its definition}; ExportError when it is not a `fmt` export."""
    try:
        if fmt == "k8s":
            return _k8s_definitions([doc for doc in yaml.load_all(text, Loader=YAML_LOADER) if doc is not None], source)
        if fmt == "cloud-scheduler":
            return _scheduler_definitions(json.loads(text), source)
        return _github_definitions(yaml.load(text, Loader=YAML_LOADER), source)  # noqa: S506 - a safe loader
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ExportError(f"--check {source}: not a {fmt} export: {first}") from exc


def _not_ours(source: str, fmt: str, what: str) -> ExportError:
    return ExportError(f"--check {source}: not a {fmt} export written by `crontab export`: {what}")


def _dig(value: Any, *keys: Any) -> Any:
    """value[k1][k2]..., or None where a level is missing or not a mapping (a file may hold anything)."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _k8s_definitions(documents: list, source: str) -> dict[str, Any]:
    found = {}
    for number, doc in enumerate(documents, 1):
        name = _dig(doc, "metadata", "annotations", JOB_ANNOTATION)
        if _dig(doc, "kind") != "CronJob" or not isinstance(name, str):
            raise _not_ours(source, "k8s", f"document {number} is not a CronJob with a {JOB_ANNOTATION} annotation")
        found[name] = doc
    return found


def _scheduler_definitions(data: Any, source: str) -> dict[str, Any]:
    jobs = data.get("jobs") if isinstance(data, dict) else None
    if not isinstance(jobs, list):
        raise _not_ours(source, "cloud-scheduler", 'no "jobs" list')
    found = {}
    for number, job in enumerate(jobs, 1):
        uri = _dig(job, "httpTarget", "uri")
        path = urlsplit(uri if isinstance(uri, str) else "").path
        if FIRE_PATH not in path:
            raise _not_ours(source, "cloud-scheduler", f"job {number} does not POST to {FIRE_PATH}<name>")
        found[unquote(path.rsplit(FIRE_PATH, 1)[1])] = job
    return found


def _github_definitions(workflow: Any, source: str) -> dict[str, Any]:
    jobs = workflow.get("jobs") if isinstance(workflow, dict) else None
    if not isinstance(jobs, dict):
        raise _not_ours(source, "github-actions", 'no "jobs" mapping')
    found = {}
    for key, job in jobs.items():
        name = _dig(job, "env", "CRONJOBS_JOB")
        if not isinstance(name, str):
            raise _not_ours(source, "github-actions", f"job {key!r} has no env CRONJOBS_JOB")
        found[name] = job
    # `on:` unquoted reads as True in YAML 1.1; either way its crons are part of what fires the jobs.
    triggers = workflow.get("on", workflow.get(True))
    found["(workflow triggers)"] = triggers
    return found


def compare(previous: Mapping[str, Any], current: Mapping[str, Any]) -> Comparison:
    """Job by job. Entries named "(...)" are the file's own settings (a workflow's triggers): they follow
    from the jobs, so they are reported only when no job explains a difference (a hand edit)."""
    common = [name for name in current if name in previous]
    comparison = Comparison(
        added=[name for name in current if name not in previous],
        changed={
            name: differences(previous[name], current[name]) for name in common if previous[name] != current[name]
        },
        removed=[name for name in previous if name not in current],
        kept=[name for name in common if previous[name] == current[name] and not name.startswith("(")],
    )
    if comparison.added or comparison.removed or any(not name.startswith("(") for name in comparison.changed):
        comparison.changed = {name: found for name, found in comparison.changed.items() if not name.startswith("(")}
    return comparison


def differences(before: Any, after: Any, path: str = "", limit: int = 4) -> list[str]:
    """What differs between two parsed definitions, as `path: old -> new`, at most `limit` entries."""
    if isinstance(before, dict) and isinstance(after, dict):
        found: list[str] = []
        for key in [*before, *(k for k in after if k not in before)]:
            if before.get(key) != after.get(key):
                found += differences(before.get(key), after.get(key), f"{path}.{key}" if path else str(key), limit)
        return found[:limit]
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        found = []
        for index, (old, new) in enumerate(zip(before, after, strict=True)):
            if old != new:
                found += differences(old, new, f"{path}[{index}]", limit)
        return found[:limit]
    return [f"{path or 'definition'}: {_short(before)} -> {_short(after)}"]


def _short(value: Any) -> str:
    text = "(none)" if value is None else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- writing ------------------------------------------------------------------------------------------
def write(path: str, text: str) -> None:
    """Write `text` to `path` whole or not at all (a temporary file beside it, renamed over it)."""
    target = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as exc:
        raise ExportError(f"--output {path}: cannot write there: {exc.strerror or exc}; nothing written") from exc
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except OSError as exc:
        Path(temporary).unlink(missing_ok=True)
        raise ExportError(f"--output {path}: cannot write it: {exc.strerror or exc}; nothing written") from exc
