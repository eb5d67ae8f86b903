"""The production stack as `make serve` starts it (bin/serve): gunicorn + whitenoise + `crontab work`, DEBUG off,
on PostgreSQL. Static files answer compressed with far-future cache headers; in Chromium, an admin logs in,
runs a job now and queries GraphiQL, all through gunicorn; an external scheduler's POST /cron/fire/<name>
races `crontab work` for a minute; SIGTERM stops everything."""

import os
import re
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.contrib.auth.models import Permission
from django.db import connection

from crm.models import ApiToken
from cronjobs.models import JobRun
from tests.crm.gql_helpers import user_with
from tests.e2e.test_browser import HEARTBEAT, PASSWORD, log_in, run_in_graphiql
from tests.factories import UserFactory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
pytestmark = [
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]
SECRET = "x" * 40 + "-Ab3$kQ9!zR7pL2mN8vW4yT6uE1oI5"
YEAR = 365 * 24 * 3600


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The test database, for the server process (committed rows only: transactional tests)."""
    s = connection.settings_dict
    auth = f"{s['USER']}:{s['PASSWORD']}" if s.get("PASSWORD") else s["USER"]
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@pytest.fixture
def serve(tmp_path):
    """bin/serve (what `make serve` runs) on a free port; yields its base URL; SIGTERM at the end."""
    yield from start_serve(tmp_path)


def start_serve(tmp_path, **extra_env):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CRM_", "CRONTAB_", "CRONJOBS_"))}
    env.update(
        {
            "CRM_ENV_FILE": os.devnull,
            "DJANGO_SECRET_KEY": SECRET,
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "DATABASE_URL": database_url(),
            "CRM_LOG_DIR": str(tmp_path),
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WEB_CONCURRENCY": "2",
            "DJANGO_LOG_LEVEL": "INFO",
            **extra_env,
        }
    )
    log = open(tmp_path / "serve.log", "w+")  # noqa: SIM115 - read at the end
    process = subprocess.Popen(["bin/serve"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # collectstatic compresses every file on a first start
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{url}/health/", timeout=10).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.5)
    else:
        stop(process)
        log.seek(0)
        pytest.fail(f"bin/serve did not come up (exit {process.poll()}): {log.read()[-3000:]}")
    try:
        yield SimpleNamespace(url=url, log=log, process=process)
    finally:
        stop(process)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)


def assert_static(url: str) -> None:
    response = requests.get(url, headers={"Accept-Encoding": "gzip, br"}, timeout=30)
    assert response.status_code == 200, url
    assert response.headers.get("Content-Encoding") in ("gzip", "br"), (url, response.headers)
    cache = response.headers.get("Cache-Control", "")
    max_age = int(re.search(r"max-age=(\d+)", cache)[1])
    assert max_age >= YEAR and "immutable" in cache, (url, cache)


def test_make_serve_static_files_admin_run_now_and_graphiql_through_gunicorn(serve, open_page):
    user = UserFactory(username="operator", is_staff=True)
    # The server checks passwords with the production hashers, not the tests' fast MD5 one.
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, PBKDF2PasswordHasher().salt())
    user.save()
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="cronjobs", codename__in=["view_jobrun", "run_job"])
    )
    login = requests.get(f"{serve.url}/admin/login/", timeout=30)
    assert login.headers["Server"] == "uvicorn"  # gunicorn.conf.py: uvicorn workers under gunicorn
    css = re.findall(r'href="(/static/admin/css/[^"]+\.[0-9a-f]{12}\.css)"', login.text)
    assert css, login.text[:2000]
    graphiql = requests.get(f"{serve.url}/graphql", headers={"Accept": "text/html"}, timeout=30).text
    scripts = re.findall(r'src="(/static/graphiql/[^"]+\.[0-9a-f]{12}\.js)"', graphiql)
    assert len(scripts) == 4, graphiql
    for path in [*css, *scripts]:
        assert_static(serve.url + path)

    with open_page() as page:
        log_in(page, serve, "operator")
        assert page.evaluate("getComputedStyle(document.querySelector('#header')).display") == "flex"  # styled
        page.goto(f"{serve.url}/admin/cronjobs/scheduledjob/")
        page.locator(f"#job-{HEARTBEAT}").get_by_role("button", name=f"Run {HEARTBEAT} now").click()
        # The run's page at once, running in a process of its own; it reloads itself until the outcome.
        page.wait_for_url(re.compile(r".*/admin/cronjobs/jobrun/\d+/change/$"))
        assert re.fullmatch(rf"Run #\d+ of {HEARTBEAT} is running", page.locator("ul.messagelist li").inner_text())
        page.locator("text=CRM is alive").first.wait_for(timeout=60_000)
        answer = run_in_graphiql(page, serve.url, "{ cronJobs { name } }", HEARTBEAT)
        assert f'"name": "{HEARTBEAT}"' in answer

    run = JobRun.objects.get(job_name=HEARTBEAT, trigger="admin")  # `crontab work` may have fired one too
    assert (run.status, run.trigger, run.triggered_by_id) == ("succeeded", "admin", user.pk)

    children = descendants(serve.process.pid)
    assert len(children) >= 4  # gunicorn's master and 2 workers, `crontab work`
    serve.process.send_signal(signal.SIGTERM)
    assert serve.process.wait(timeout=120) == 143
    serve.log.seek(0)
    output = serve.log.read()
    assert "Booting worker" in output and "Shutting down: Master" in output and "stopped" in output, output[-3000:]
    assert not [pid for pid in children if os.path.exists(f"/proc/{pid}")], "processes left running"


def test_the_fire_endpoint_through_gunicorn_beside_crontab_work(serve):
    """POST /cron/fire/<name> as an external scheduler sends it, through gunicorn's workers, while `crontab work`
    fires the same job beside them: two concurrent POSTs (each may land on another worker) and the scheduler
    end with one run for the minute, and both answers name it. Which of them claimed it is a race; a run the
    endpoint started is finished by its own supervising process (?wait=20 sees the outcome)."""
    token = ApiToken.issue(user=user_with("cronjobs.run_job"))[1]
    url, headers = f"{serve.url}/cron/fire/{HEARTBEAT}?wait=20", {"Authorization": f"Bearer {token}"}
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: requests.post(url, headers=headers, timeout=60), range(2)))
    assert sorted(a.status_code for a in answers) in ([200, 200], [200, 202]), [a.text for a in answers]
    [run_id] = {a.json()["run"]["id"] for a in answers}
    run = JobRun.objects.get(pk=run_id)
    assert JobRun.objects.filter(job_name=HEARTBEAT, scheduled_for=run.scheduled_for).count() == 1
    if 202 in [a.status_code for a in answers]:
        assert (run.trigger, run.status) == ("http", "succeeded")
        # Its own process (which may still be exiting after it recorded the outcome), never a web worker.
        tree = [serve.process.pid, *descendants(serve.process.pid)]
        web = [pid for pid in tree if "--claimed-run" not in cmdline(pid)]
        assert run.pid not in web
    assert all(a.json()["run"]["status"] == run.status for a in answers)
    refused = requests.post(f"{serve.url}/cron/fire/{HEARTBEAT}", timeout=30)
    assert refused.status_code == 401 and refused.json()["errors"][0]["extensions"]["code"] == "unauthenticated"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""  # gone meanwhile


def descendants(pid: int) -> list[int]:
    found = []
    for line in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split():
        found += [int(line), *descendants(int(line))]
    return found


SLOW_JOB = [["0 0 1 1 *", "tests.cronjobs.jobs.sleep_then_succeed", [45], {}, {"name": "slow"}]]


@pytest.fixture
def serve_with_a_slow_job(tmp_path):
    """bin/serve whose CRONJOBS holds a job of 45 s: longer than gunicorn's worker timeout (30 s)."""
    import json

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"DATABASE_URL": database_url(), "settings": {"CRONJOBS": SLOW_JOB}}))
    yield from start_serve(
        tmp_path, DJANGO_SETTINGS_MODULE="tests.cronjobs.subprocess_settings", CRONJOBS_TEST_CONFIG=str(config)
    )


def test_run_now_of_a_45_second_job_answers_at_once_and_runs_outside_the_web_workers(serve_with_a_slow_job, open_page):
    """Before: the request took 30.6 s, gunicorn killed its own worker, and the run was recorded
    failed "SystemExit: 1"."""
    import time

    from crm.models import ApiToken

    serve = serve_with_a_slow_job
    user = UserFactory(username="operator", is_staff=True)
    user.set_password(PASSWORD)  # the server runs the tests' settings here: their hasher
    user.save()
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="cronjobs", codename__in=["view_jobrun", "run_job"])
    )
    _token, raw = ApiToken.issue(user=user, name="e2e")
    query = 'mutation { runCronJob(name: "slow") { run { id status } message errors } }'
    started = time.monotonic()
    answer = requests.post(
        f"{serve.url}/graphql", json={"query": query}, headers={"Authorization": f"Bearer {raw}"}, timeout=60
    )
    took = time.monotonic() - started
    payload = answer.json()["data"]["runCronJob"]
    assert answer.status_code == 200 and payload["errors"] == [] and payload["run"]["status"] == "running"
    assert took < 2, took
    run = JobRun.objects.get(job_name="slow")
    supervisor = run.pid or _wait_for_pid(run)
    command = open(f"/proc/{supervisor}/cmdline", "rb").read().decode().split("\0")
    assert "--claimed-run" in command and str(run.pk) in command  # not a web worker: its own process

    with open_page() as page:  # the admin's button: the same, through the real server and a browser
        log_in(page, serve, "operator")
        page.goto(f"{serve.url}/admin/cronjobs/scheduledjob/")
        clicked = time.monotonic()
        page.locator("#job-slow").get_by_role("button", name="Run slow now").click()
        page.wait_for_url(re.compile(r".*/admin/cronjobs/jobrun/\d+/change/$"))
        assert time.monotonic() - clicked < 5  # a page load and a redirect, not the job
        assert "still running" in page.inner_text("#content") or "skipped" in page.inner_text("#content")

    deadline = time.monotonic() + 120
    while JobRun.objects.filter(job_name="slow", status="running").exists():
        assert time.monotonic() < deadline, list(JobRun.objects.values("status", "result"))
        time.sleep(1)
    first = JobRun.objects.get(pk=run.pk)
    assert (first.status, first.result, first.trigger) == ("succeeded", "slept 45 s", "graphql")
    serve.log.seek(0)
    log = serve.log.read()
    assert "WORKER TIMEOUT" not in log and "SystemExit" not in log, log[-3000:]


def _wait_for_pid(run) -> int:
    import time

    deadline = time.monotonic() + 60
    while not run.pid:
        assert time.monotonic() < deadline, "the supervising process never took the run"
        time.sleep(0.2)
        run.refresh_from_db()
    return run.pid
