"""`crontab export` (issue 28): CRONJOBS as Kubernetes CronJobs, Cloud Scheduler jobs and a GitHub Actions workflow;
`--check` against a previous export; the name mapping; every refusal writes nothing."""

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from io import StringIO
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from croniter import croniter
from django.core.management import call_command
from django.core.management.base import CommandError
from hypothesis import given
from hypothesis import strategies as st

from crm.models import ApiToken
from cronjobs import export
from cronjobs.models import JobRun
from cronjobs.registry import NAME_RE, get_registry, parse_cronjobs
from tests.clock import travel
from tests.crm.gql_helpers import user_with
from tests.cronjobs.conftest import ROOT, SUBPROCESS_SETTINGS, clean_env, write_config
from tests.cronjobs.monitors import Monitor
from tests.runs import finish_detached

JOBS = "tests.cronjobs.jobs"
BASE = "https://crm.example.com"
ENTRIES = [
    ("*/5 * * * *", f"{JOBS}.succeed", {"name": "fine", "grace": 120, "timeout": 60, "description": "All good"}),
    ("30 2 * * *", f"{JOBS}.succeed", {"name": "berlin.nightly", "timezone": "Europe/Berlin", "allow_overlap": True}),
    ("0 9 * * mon-fri", f"{JOBS}.succeed", {"name": "Kolkata_Report", "timezone": "Asia/Kolkata", "grace": 3}),
    ("@daily", f"{JOBS}.succeed", {"name": "off", "enabled": False}),
]
ENABLED = ["fine", "berlin.nightly", "Kolkata_Report"]
GCP = ("--project", "my-project", "--location", "europe-west1")


@pytest.fixture(autouse=True)
def jobs(settings):
    settings.TIME_ZONE = "UTC"
    settings.CRONJOBS = ENTRIES
    settings.CRONJOBS_BASE_URL = BASE


def crontab_export(*args):
    """(exit code, stdout, stderr) of `crontab export ARGS`; a CommandError's line is added to stderr."""
    out, err = StringIO(), StringIO()
    try:
        call_command("crontab", "export", *args, stdout=out, stderr=err)
    except CommandError as error:
        return error.returncode, out.getvalue(), err.getvalue() + str(error)
    return 0, out.getvalue(), err.getvalue()


def exported(*args) -> str:
    code, out, err = crontab_export(*args)
    assert code == 0, err
    return out


# --- k8s -------------------------------------------------------------------------------------------------
def test_k8s_is_one_batch_v1_cronjob_per_enabled_job_with_the_jobs_fields():
    code, out, err = crontab_export("--format", "k8s")
    assert code == 0
    documents = list(yaml.safe_load_all(out))
    assert [(d["apiVersion"], d["kind"]) for d in documents] == [("batch/v1", "CronJob")] * 3
    by_name = {d["metadata"]["annotations"]["cronjobs/job-name"]: d for d in documents}
    assert list(by_name) == ENABLED
    assert err == "left out off: disabled (enabled: False)\n"
    for name, document in by_name.items():
        job = get_registry().get(name)
        spec = document["spec"]
        assert (spec["schedule"], spec["timeZone"]) == (job.cron_expression, job.zone.key)
        assert spec["concurrencyPolicy"] == ("Allow" if job.allow_overlap else "Forbid")
        assert document["metadata"]["name"] == export.k8s_name(name)
        assert document["metadata"]["namespace"] == "default"
        pod = spec["jobTemplate"]["spec"]["template"]["spec"]
        assert pod["restartPolicy"] == "Never" and spec["jobTemplate"]["spec"]["backoffLimit"] == 0
        (container,) = pod["containers"]
        assert container["command"] == ["python", "manage.py", "crontab", "run", name, "--scheduled"]
        assert container["image"] == "crm:latest" and container["envFrom"] == [{"secretRef": {"name": "crm-env"}}]
    assert by_name["berlin.nightly"]["spec"]["timeZone"] == "Europe/Berlin"
    assert by_name["fine"]["spec"]["startingDeadlineSeconds"] == 120
    assert by_name["Kolkata_Report"]["spec"]["startingDeadlineSeconds"] == 10  # Kubernetes may skip below 10 s
    assert "startingDeadlineSeconds" not in by_name["berlin.nightly"]["spec"]  # no grace: no deadline
    # a backstop behind the engine's own 60 s timeout; a job without a timeout gets none
    assert by_name["fine"]["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] > 60
    assert "activeDeadlineSeconds" not in by_name["berlin.nightly"]["spec"]["jobTemplate"]["spec"]


def test_k8s_image_namespace_and_env_secret_come_from_options_then_settings(settings):
    settings.CRONJOBS_EXPORT_IMAGE = "registry.example.com/crm:1.4"
    settings.CRONJOBS_EXPORT_NAMESPACE = "crm"
    documents = list(yaml.safe_load_all(exported("--format", "k8s", "--env-secret", "")))
    container = documents[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/crm:1.4" and "envFrom" not in container
    assert documents[0]["metadata"]["namespace"] == "crm"
    documents = list(yaml.safe_load_all(exported("--format", "k8s", "--image", "crm:2", "--namespace", "jobs")))
    assert documents[0]["metadata"]["namespace"] == "jobs"
    assert documents[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"] == "crm:2"


def test_the_command_a_cronjob_runs_records_the_run(settings, shared_db, world_dir):
    """The container's command line, run with the project's manage.py against the test database (its
    environment, which the pod gets from the env Secret, is the test's): the run is recorded."""
    entries = [("* * * * *", f"{JOBS}.succeed", {"name": "every_minute"})]
    settings.CRONJOBS = entries
    (document,) = yaml.safe_load_all(exported("--format", "k8s"))
    command = document["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    assert command[0] == "python"
    config = write_config(world_dir, shared_db, CRONJOBS=entries, TIME_ZONE="UTC")
    env = clean_env(CRONJOBS_TEST_CONFIG=str(config))
    argv = [sys.executable, *command[1:], f"--settings={SUBPROCESS_SETTINGS}"]
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")  # a scheduled run is silent
    (run,) = shared_db.runs("every_minute")
    assert (run["status"], run["trigger"], run["result"]) == ("succeeded", "crontab", "all good")
    assert run["scheduled_for"] is not None


@pytest.mark.django_db
def test_a_zoned_jobs_pod_starting_late_still_runs():
    due = datetime(2026, 7, 1, 0, 30, tzinfo=UTC)  # 02:30 in Berlin (summer time)
    assert get_registry().get("berlin.nightly").is_due(due)
    with travel(due + timedelta(seconds=150)):  # the image took two minutes to pull
        call_command("crontab", "run", "berlin.nightly", "--scheduled", stdout=StringIO(), stderr=StringIO())
    assert JobRun.objects.filter(job_name="berlin.nightly", status="succeeded").exists()


# --- names -----------------------------------------------------------------------------------------------
job_names = st.from_regex(NAME_RE, fullmatch=True).filter(lambda name: not re.fullmatch(r"[0-9a-f]{32}", name))
K8S_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
EXTERNAL_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")  # GitHub job ids; Cloud Scheduler takes these too


@given(st.lists(job_names, min_size=2, max_size=8, unique=True))
def test_names_map_to_valid_platform_names_one_to_one(names):
    k8s = [export.k8s_name(name) for name in names]
    ids = [export.external_id(name) for name in names]
    assert all(K8S_NAME.match(n) and len(n) <= export.K8S_MAX_NAME for n in k8s), k8s
    assert all(EXTERNAL_ID.match(i) and len(i) <= 100 for i in ids), ids
    assert len(set(k8s)) == len(names) and len(set(ids)) == len(names)
    assert k8s == [export.k8s_name(name) for name in reversed(names)][::-1]  # the name alone decides


def test_names_stay_readable():
    assert export.k8s_name("log_crm_heartbeat") == "log-crm-heartbeat"
    assert re.fullmatch(r"my-job-[0-9a-f]{8}", export.k8s_name("My.Job"))
    assert re.fullmatch(r"log-crm-heartbeat-[0-9a-f]{8}", export.k8s_name("log-crm-heartbeat"))  # '-' vs '_'
    assert export.external_id("log_crm_heartbeat") == "log_crm_heartbeat"
    assert re.fullmatch(r"berlin-nightly-[0-9a-f]{8}", export.external_id("berlin.nightly"))


def test_two_jobs_given_one_platform_name_are_refused(settings, tmp_path):
    crafted = "foo_" + export.k8s_name("Foo").rsplit("-", 1)[1]  # maps to the name Foo's hash gives
    settings.CRONJOBS = [
        ("* * * * *", f"{JOBS}.succeed", {"name": "Foo"}),
        ("* * * * *", f"{JOBS}.add", {"name": crafted}),
    ]
    code, _, err = crontab_export("--format", "k8s", "--output", str(tmp_path / "out.yaml"))
    assert code == 2 and f"jobs 'Foo' and '{crafted}' would both be named" in err
    assert not (tmp_path / "out.yaml").exists()


# --- cloud-scheduler ------------------------------------------------------------------------------------
def test_cloud_scheduler_jobs_post_to_the_fire_endpoint_in_the_jobs_zone():
    text = exported("--format", "cloud-scheduler", *GCP)
    assert yaml.safe_load(text) == json.loads(text)  # JSON, hence YAML too
    jobs = json.loads(text)["jobs"]
    assert len(jobs) == 3
    for job, name in zip(jobs, ENABLED, strict=True):
        declared = get_registry().get(name)
        assert job["name"] == f"projects/my-project/locations/europe-west1/jobs/{export.external_id(name)}"
        assert (job["schedule"], job["timeZone"]) == (declared.cron_expression, declared.zone.key)
        assert job["httpTarget"] == {
            "uri": f"{BASE}/cron/fire/{name}",
            "httpMethod": "POST",
            "headers": {"Authorization": "Bearer ${CRONJOBS_FIRE_TOKEN}"},  # a placeholder, never a token
        }
        assert 15 <= int(job["attemptDeadline"].rstrip("s")) <= 1800  # Cloud Scheduler's range for HTTP targets
        assert 0 <= job["retryConfig"]["retryCount"] <= 5
    assert jobs[0]["timeZone"] == "UTC" and jobs[1]["timeZone"] == "Europe/Berlin"
    assert jobs[0]["retryConfig"]["maxRetryDuration"] == "120s"  # no retry outlives the grace
    assert jobs[2]["retryConfig"] == {"retryCount": 0}  # a 3 s grace leaves no time to retry


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--project", "p"), "--location '': give the Cloud Scheduler region"),
        (("--location", "europe-west1"), "--project '': give the Google Cloud project id"),
        ((*GCP, "--base-url", "http://127.0.0.1:8000"), "is this machine only"),
        ((*GCP, "--base-url", "crm.example.com"), "is not an http(s) URL"),
    ],
)
def test_cloud_scheduler_refuses_what_it_cannot_target_and_writes_nothing(args, message, tmp_path, settings):
    settings.CRONJOBS_EXPORT_GCP_PROJECT = None  # unset, as a settings file may say
    code, _, err = crontab_export("--format", "cloud-scheduler", *args, "--output", str(tmp_path / "jobs.json"))
    assert code == 2 and message in err and "nothing written" in err
    assert not (tmp_path / "jobs.json").exists()


# --- github-actions -------------------------------------------------------------------------------------
def without_berlin(settings):
    settings.CRONJOBS = [entry for entry in ENTRIES if entry[2]["name"] != "berlin.nightly"]


def test_github_actions_workflow_fires_each_job_at_its_utc_crons(settings):
    without_berlin(settings)
    workflow = yaml.safe_load(exported("--format", "github-actions"))
    crons = [entry["cron"] for entry in workflow["on"]["schedule"]]
    assert sorted(crons) == ["*/5 * * * *", "30 3 * * 1-5"]  # 09:00 Kolkata (UTC+05:30) is 03:30 UTC
    assert workflow["permissions"] == {}
    jobs = workflow["jobs"]
    assert list(jobs) == ["fine", "Kolkata_Report"]
    report = jobs["Kolkata_Report"]
    assert report["if"] == "github.event.schedule == '30 3 * * 1-5'"
    assert report["env"] == {
        "CRONJOBS_JOB": "Kolkata_Report",
        "CRONJOBS_SCHEDULE": "0 9 * * mon-fri",
        "CRONJOBS_TIMEZONE": "Asia/Kolkata",
    }
    (step,) = report["steps"]
    assert step["env"] == {"CRONJOBS_FIRE_TOKEN": "${{ secrets.CRONJOBS_FIRE_TOKEN }}"}
    assert f'-X POST -H "Authorization: Bearer $CRONJOBS_FIRE_TOKEN" {BASE}/cron/fire/Kolkata_Report' in step["run"]


def test_the_workflow_is_valid_for_github(settings, tmp_path):
    """Against GitHub's published workflow schema, as check-jsonschema vendors it (no network)."""
    without_berlin(settings)
    workflow = tmp_path / "cronjobs.yml"
    assert crontab_export("--format", "github-actions", "--output", str(workflow))[0] == 0
    argv = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(workflow)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    workflow.write_text(workflow.read_text().replace("runs-on: ubuntu-latest", "runs-on: [[]]", 1))
    assert subprocess.run(argv, capture_output=True, timeout=120).returncode == 1  # the check can fail


def test_a_job_in_a_zone_with_daylight_saving_is_refused_naming_it(tmp_path):
    code, _, err = crontab_export("--format", "github-actions", "--output", str(tmp_path / "cron.yml"))
    assert code == 2 and not (tmp_path / "cron.yml").exists()
    (line,) = err.strip().splitlines()
    assert line.startswith("berlin.nightly: cannot be exported to github-actions: its zone Europe/Berlin")
    assert "daylight saving time" in line and "nothing written" in line


def test_a_job_firing_more_often_than_github_allows_is_refused(settings):
    settings.CRONJOBS = [("*/2 * * * *", f"{JOBS}.succeed", {"name": "often"})]
    code, _, err = crontab_export("--format", "github-actions")
    assert code == 2 and "often: cannot be exported" in err and "at most every 5 minutes" in err


def fires(crons: list[str], start: datetime, days: int) -> list[datetime]:
    """Every UTC minute one of `crons` fires in [start, start + days)."""
    found = set()
    for cron in crons:
        times = croniter(cron, start - timedelta(seconds=1))
        while (moment := times.get_next(datetime)) < start + timedelta(days=days):
            found.add(moment)
    return sorted(found)


def due(job, start: datetime, days: int) -> list[datetime]:
    found, moment = [], start - timedelta(seconds=1)
    while (moment := job.next_run(moment).astimezone(UTC)) < start + timedelta(days=days):
        found.append(moment)
    return found


@pytest.mark.parametrize(
    ("schedule", "zone"),
    [
        ("0 2 * * 1", "Asia/Tokyo"),  # Monday 02:00 JST is Sunday 17:00 UTC
        ("30 23 * * 5", "Etc/GMT+5"),  # Friday 23:30 at UTC-5 is Saturday 04:30 UTC
        ("15,45 0-3 * * *", "Asia/Kolkata"),  # half-hour offset: minutes split between hours and days
        ("*/20 4-6 * * sat,sun", "Asia/Kathmandu"),  # UTC+05:45
        ("0 0 1 * *", "UTC"),
        ("@weekly", "Asia/Tokyo"),
    ],
)
def test_utc_crons_fire_exactly_at_the_jobs_due_minutes(schedule, zone):
    (job,) = parse_cronjobs([(schedule, f"{JOBS}.succeed", {"timezone": zone})]).jobs
    start = datetime(2026, 2, 23, tzinfo=UTC)
    assert fires(export.github_crons(job), start, 21) == due(job, start, 21)


def test_a_day_of_month_that_would_move_a_day_in_utc_is_refused():
    (job,) = parse_cronjobs([("0 2 1 * *", f"{JOBS}.succeed", {"timezone": "Asia/Tokyo"})]).jobs
    with pytest.raises(export.ExportError, match="cannot move by a day exactly"):
        export.github_crons(job)


def test_the_workflow_step_posts_to_the_fire_endpoint_with_the_secret(settings, tmp_path):
    """The step's shell, run by bash with the real curl against a recording HTTP server, which can answer
    anything (here a 403); curl is pointed at it through a .curlrc, so the step's text runs unchanged. Its
    twin against the real endpoint: test_the_workflow_step_fires_the_real_endpoint."""
    without_berlin(settings)
    workflow = yaml.safe_load(exported("--format", "github-actions", "--base-url", "http://crm.example.test"))
    monitor = Monitor().start()
    try:
        port = monitor.server.server_address[1]
        (tmp_path / ".curlrc").write_text(f'connect-to = "crm.example.test:80:127.0.0.1:{port}"\n')
        step = workflow["jobs"]["fine"]["steps"][0]
        env = {"PATH": "/usr/bin:/bin", "CURL_HOME": str(tmp_path), "CRONJOBS_FIRE_TOKEN": "t0ken"}
        result = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert [(p.path, p.authorization) for p in monitor.pings] == [("/cron/fire/fine", "Bearer t0ken")]
        monitor.status = 403  # a refusal fails the step, so the workflow run shows it
        failed = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True, timeout=60)
        assert failed.returncode != 0 and "403" in failed.stderr
    finally:
        monitor.stop()


@pytest.fixture
def site(settings, live_server):
    """The real fire endpoint (a live server on the test database) answering for the exported base URLs."""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "crm.example.com", "crm.example.test"]
    return live_server


def fire_token(*permissions: str) -> str:
    return ApiToken.issue(user=user_with(*permissions))[1]


FIRED_AT = datetime(2026, 7, 1, 10, 0, 4, tzinfo=UTC)  # 4 s into a due minute of `fine` (*/5)


@pytest.mark.django_db(transaction=True)
def test_the_workflow_step_fires_the_real_endpoint(settings, tmp_path, site, detached_supervisors):
    """The stand-in's twin: the same step, run by bash and curl, against the real endpoint. It starts the run;
    run again (GitHub re-running the job) it succeeds with the run that holds the minute; a token without the
    permission fails the step, and the workflow run shows the refusal."""
    without_berlin(settings)
    workflow = yaml.safe_load(exported("--format", "github-actions", "--base-url", "http://crm.example.test"))
    (tmp_path / ".curlrc").write_text(f'connect-to = "crm.example.test:80:127.0.0.1:{urlsplit(site.url).port}"\n')
    step = workflow["jobs"]["fine"]["steps"][0]

    def run_step(token: str) -> subprocess.CompletedProcess:
        env = {"PATH": "/usr/bin:/bin", "CURL_HOME": str(tmp_path), "CRONJOBS_FIRE_TOKEN": token}
        return subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True, timeout=60)

    token = fire_token("cronjobs.run_job")
    with travel(FIRED_AT, tick=True):
        first = run_step(token)
        assert first.returncode == 0, first.stderr
        answer = json.loads(first.stdout)
        assert (answer["started"], answer["run"]["status"], answer["run"]["trigger"]) == (True, "running", "http")
        finish_detached(detached_supervisors[0])
        again = run_step(token)
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["message"] == f"already run by run #{answer['run']['id']} (succeeded)"
        refused = run_step(fire_token("cronjobs.view_jobrun"))
    assert refused.returncode != 0 and "403" in refused.stderr
    assert "cronjobs.run_job" in refused.stdout  # --fail-with-body: the refusal's reason is in the log
    [run] = JobRun.objects.filter(job_name="fine")
    assert (run.status, run.scheduled_for) == ("succeeded", FIRED_AT.replace(second=0))


@pytest.mark.django_db(transaction=True)
def test_a_cloud_scheduler_job_fires_the_real_endpoint(site, detached_supervisors):
    """An exported Cloud Scheduler job, sent as Cloud Scheduler sends it (its target, its headers with the
    token filled in, and the headers it adds) to the real endpoint; its retry finds the run that holds the
    minute and succeeds (2xx), so Cloud Scheduler stops retrying."""
    spec = json.loads(exported("--format", "cloud-scheduler", *GCP))["jobs"][0]
    target, token = spec["httpTarget"], fire_token("cronjobs.run_job")
    headers = {name: value.replace(export.TOKEN_PLACEHOLDER, token) for name, value in target["headers"].items()}
    headers.update(
        {
            "Host": urlsplit(target["uri"]).hostname,
            "User-Agent": "Google-Cloud-Scheduler",
            "X-CloudScheduler": "true",
            "X-CloudScheduler-JobName": spec["name"].rsplit("/", 1)[1],
            "X-CloudScheduler-ScheduleTime": "2026-07-01T10:00:00Z",
        }
    )
    url = site.url + urlsplit(target["uri"]).path
    deadline = int(spec["attemptDeadline"].rstrip("s"))
    with travel(FIRED_AT, tick=True) as clock:
        first = requests.request(target["httpMethod"], url, headers=headers, timeout=deadline)
        clock.shift(70)  # the retry, after Cloud Scheduler's backoff: 10:01:14, still claims 10:00
        retry = requests.request(target["httpMethod"], url, headers=headers, timeout=deadline)
    assert first.status_code == 202, first.text
    assert retry.status_code == 200 and retry.json()["run"]["id"] == first.json()["run"]["id"]
    assert first.json()["run"]["scheduled_for"] == "2026-07-01T10:00:00+00:00"
    assert len(detached_supervisors) == 1


# --- --check ---------------------------------------------------------------------------------------------
FORMAT_ARGS = {"k8s": (), "cloud-scheduler": GCP, "github-actions": ()}


@pytest.mark.parametrize("fmt", FORMAT_ARGS)
def test_check_names_a_changed_schedule_an_added_and_a_removed_job(fmt, settings, tmp_path):
    without_berlin(settings)
    previous = tmp_path / "previous"
    args = ("--format", fmt, *FORMAT_ARGS[fmt])
    assert crontab_export(*args, "--output", str(previous))[0] == 0
    code, out, _ = crontab_export(*args, "--check", str(previous))
    assert code == 0 and out.endswith(f"{previous} matches CRONJOBS\n")

    settings.CRONJOBS = [
        ("*/10 * * * *", f"{JOBS}.succeed", {"name": "fine", "grace": 120, "timeout": 60, "description": "All good"}),
        ("0 7 * * *", f"{JOBS}.succeed", {"name": "newcomer"}),
    ]
    code, out, err = crontab_export(*args, "--check", str(previous))
    assert code == 1 and f"{previous} differs from CRONJOBS: 1 added, 1 changed, 1 removed" in err
    lines = [line.strip() for line in out.splitlines()]
    removed = {
        "k8s": f" (CronJob {export.k8s_name('Kolkata_Report')})",
        "cloud-scheduler": " (Cloud Scheduler job Kolkata_Report)",
        "github-actions": "",
    }[fmt]
    assert "added    newcomer" in lines and f"removed  Kolkata_Report{removed}" in lines
    (changed,) = [line for line in lines if line.startswith("changed  fine: ")]
    assert "'*/5 * * * *' -> '*/10 * * * *'" in changed


def test_check_of_an_unreadable_or_foreign_file_is_one_line_and_exit_2(tmp_path):
    code, out, err = crontab_export("--format", "k8s", "--check", str(tmp_path / "missing.yaml"))
    assert (code, out) == (
        2,
        "",
    ) and err == f"--check {tmp_path / 'missing.yaml'}: cannot read it: No such file or directory"
    (tmp_path / "other.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    code, _, err = crontab_export("--format", "k8s", "--check", str(tmp_path / "other.yaml"))
    assert code == 2 and "not a k8s export written by `crontab export`: document 1 is not a CronJob" in err
    (tmp_path / "odd.yaml").write_text("kind: CronJob\nmetadata: [1, 2]\n")
    code, _, err = crontab_export("--format", "k8s", "--check", str(tmp_path / "odd.yaml"))
    assert code == 2 and "document 1 is not a CronJob with a cronjobs/job-name annotation" in err
    (tmp_path / "odd.json").write_text('{"jobs": [{"httpTarget": "https://crm.example.com/cron/fire/x"}]}')
    code, _, err = crontab_export("--format", "cloud-scheduler", *GCP, "--check", str(tmp_path / "odd.json"))
    assert code == 2 and "job 1 does not POST to /cron/fire/<name>" in err
    (tmp_path / "broken.yaml").write_text("a: [b\n")
    code, _, err = crontab_export("--format", "k8s", "--check", str(tmp_path / "broken.yaml"))
    assert code == 2 and "not a k8s export" in err and len(err.splitlines()) == 1
    code, _, err = crontab_export("--format", "k8s", "--check", str(tmp_path / "x"), "--output", str(tmp_path / "y"))
    assert code == 2 and "leave out --output" in err


# --- bad input ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "--format is required: use one of k8s, cloud-scheduler, github-actions"),
        (("--format", "ecs"), "unknown --format 'ecs'"),
        (("--format", "k8s", "--namespace", "Not_A_Namespace"), "is not a Kubernetes namespace name"),
        (("--format", "k8s", "--image", ""), "--image '': give the image"),
    ],
)
def test_bad_options_are_one_line_exit_2_and_write_nothing(args, message, tmp_path):
    code, out, err = crontab_export(*args, "--output", str(tmp_path / "out"))
    assert (code, out) == (2, "") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_broken_cronjobs_exports_nothing(settings, tmp_path):
    settings.CRONJOBS = [*ENTRIES, ("61 * * * *", f"{JOBS}.succeed", {"name": "broken"})]
    code, _, err = crontab_export("--format", "k8s", "--output", str(tmp_path / "out"))
    assert code == 2 and "cronjobs.E003" in err and "nothing exported" in err
    assert not (tmp_path / "out").exists()


def test_output_is_replaced_whole_and_kept_when_a_later_export_fails(tmp_path):
    target = tmp_path / "cron.yml"
    code, out, _ = crontab_export("--format", "k8s", "--output", str(target))
    assert code == 0 and out == f"wrote 3 job(s) to {target} (k8s)\n"
    written = target.read_text()
    assert written == exported("--format", "k8s") and written.startswith("# Written by `python manage.py crontab")
    assert crontab_export("--format", "github-actions", "--output", str(target))[0] == 2  # Berlin is refused
    assert target.read_text() == written and [p.name for p in tmp_path.iterdir()] == ["cron.yml"]


FIXED_ZONES = ["UTC", "Asia/Tokyo", "Asia/Kolkata", "Asia/Kathmandu", "Etc/GMT+5", "Etc/GMT-14", "America/Panama"]


@given(
    minutes=st.sets(st.integers(0, 59), min_size=1, max_size=3),
    hours=st.sets(st.integers(0, 23), min_size=1, max_size=3),
    weekdays=st.none() | st.sets(st.integers(0, 6), min_size=1, max_size=3),
    zone=st.sampled_from(FIXED_ZONES),
)
def test_any_schedule_in_a_fixed_offset_zone_converts_exactly(minutes, hours, weekdays, zone):
    schedule = " ".join([",".join(map(str, sorted(minutes))), ",".join(map(str, sorted(hours))), "*", "*"])
    schedule += " " + (",".join(map(str, sorted(weekdays))) if weekdays else "*")
    (job,) = parse_cronjobs([(schedule, f"{JOBS}.succeed", {"timezone": zone})]).jobs
    start = datetime(2026, 2, 23, tzinfo=UTC)
    try:
        crons = export.github_crons(job)
    except export.ExportError as refused:
        assert "at most every 5 minutes" in str(refused)  # the only refusal with `*` days
        assert export.min_interval(job.cron_expression) < export.GITHUB_MIN_INTERVAL
        return
    assert fires(crons, start, 15) == due(job, start, 15)


def test_check_notices_a_hand_edited_workflow_trigger(settings, tmp_path):
    without_berlin(settings)
    previous = tmp_path / "cronjobs.yml"
    crontab_export("--format", "github-actions", "--output", str(previous))
    previous.write_text(previous.read_text().replace("  - cron: 30 3 * * 1-5\n", ""))
    code, out, err = crontab_export("--format", "github-actions", "--check", str(previous))
    assert code == 1 and "0 added, 0 changed, 0 removed; workflow triggers differ" in err
    assert "changed  (workflow triggers): schedule: " in out


def test_a_crontab_suffix_is_named_as_left_behind(settings):
    settings.CRONJOBS = [("0 2 * * 0", f"{JOBS}.succeed", "> /dev/null")]
    code, out, err = crontab_export("--format", "k8s")
    assert code == 0 and "/dev/null" not in out
    assert (
        err == "note: succeed: its shell suffix '> /dev/null' belongs to crontab lines; k8s runs the job without it\n"
    )
