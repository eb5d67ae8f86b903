"""In Chromium: Run now on the admin's Scheduled jobs page records a succeeded run; GraphiQL answers { hello }."""

import re
import threading

import pytest

from cronjobs.models import JobRun
from tests.crm.gql_helpers import staff
from tests.runs import finish_detached

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "pw-for-tests"  # tests.factories.UserFactory's
HEARTBEAT = "log_crm_heartbeat"


@pytest.fixture
def operator():
    """A staff user who may see the jobs and run them: created before the browser starts."""
    return staff("cronjobs.view_jobrun", "cronjobs.run_job", username="operator")


@pytest.fixture
def log_dir(settings, tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    # The shipped CRONJOBS, with the heartbeat writing here instead of /tmp.
    settings.CRM_LOG_DIR = str(folder)
    return folder


def log_in(page, live_server, username):
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")
    assert "Site administration" in page.inner_text("#content")


def test_run_now_on_the_heartbeat_shows_a_succeeded_run(
    live_server, operator, log_dir, open_page, tmp_path, detached_supervisors
):
    screenshot = tmp_path / "scheduled-jobs.png"
    with open_page() as page:
        log_in(page, live_server, "operator")
        # From the admin index, in the app's list (the app itself is also called "Scheduled jobs").
        page.locator("tr.model-scheduledjob").get_by_role("link", name="Scheduled jobs").click()
        page.wait_for_url(f"{live_server.url}/admin/cronjobs/scheduledjob/")
        assert page.inner_text("h1") == "Scheduled jobs"
        row = page.locator(f"#job-{HEARTBEAT}")
        assert "*/5 * * * *" in row.inner_text() and "Every 5 minutes" in row.inner_text()
        assert row.locator(".last-run").inner_text().strip() == "never"

        row.get_by_role("button", name=f"Run {HEARTBEAT} now").click()
        # The run's own page, at once: running (the run is in a process of its own: tests/runs.py).
        page.wait_for_url(re.compile(r".*/admin/cronjobs/jobrun/\d+/change/$"))
        text = page.locator("ul.messagelist li.warning").inner_text()
        assert re.fullmatch(rf"Run #\d+ of {HEARTBEAT} is running", text), text
        assert "This run is still running." in page.inner_text("#content")
        # What the started process does, done here (in a thread: Playwright's loop owns this one).
        finisher = threading.Thread(target=finish_detached, args=(detached_supervisors[0],))
        finisher.start()
        finisher.join(60)
        # The page reloads itself until the run ends, then shows its outcome.
        page.locator("text=CRM is alive").first.wait_for(timeout=15000)
        assert "still running" not in page.inner_text("#content")
        page.goto(f"{live_server.url}/admin/cronjobs/scheduledjob/")
        row = page.locator(f"#job-{HEARTBEAT}")
        last_run = row.locator(".last-run").inner_text()
        assert "succeeded" in last_run and "admin" in last_run, last_run
        assert row.locator(".job-state").inner_text() == "ok"
        page.screenshot(path=str(screenshot), full_page=True)

        # Its history: the run list, filtered to this job, shows the one run.
        row.get_by_role("link", name="History").click()
        page.wait_for_url(re.compile(rf".*/admin/cronjobs/jobrun/\?job_name={HEARTBEAT}$"))
        assert "1 job run" in page.inner_text("#changelist")

    assert screenshot.stat().st_size > 0
    run = JobRun.objects.get(job_name=HEARTBEAT)
    assert (run.status, run.trigger, run.triggered_by_id) == ("succeeded", "admin", operator.pk)
    assert f"Run #{run.pk} " in text
    assert re.fullmatch(
        r"\d\d/\d\d/\d{4}-\d\d:\d\d:\d\d CRM is alive\n", (log_dir / "crm_heartbeat_log.txt").read_text()
    )


def run_in_graphiql(page, base_url: str, query: str, expect: str) -> str:
    """Type `query` into GraphiQL at base_url/graphql, run it, wait for `expect` in the answer; the answer."""
    page.goto(f"{base_url}/graphql")
    editor = page.locator(".graphiql-query-editor .CodeMirror")
    editor.wait_for()
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    # insert_text types no key events, so the editor's bracket auto-closing adds nothing.
    page.keyboard.insert_text(query)
    assert editor.inner_text().strip().endswith(query), editor.inner_text()
    page.locator(".graphiql-execute-button").click()
    response = page.locator(".graphiql-response")
    response.get_by_text(expect).wait_for()
    return response.inner_text()


def test_graphiql_answers_hello(live_server, operator, open_page, tmp_path):
    screenshot = tmp_path / "graphiql.png"
    with open_page() as page:
        log_in(page, live_server, "operator")
        assert '"hello": "Hello, GraphQL!"' in run_in_graphiql(page, live_server.url, "{ hello }", "Hello, GraphQL!")
        page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 0
