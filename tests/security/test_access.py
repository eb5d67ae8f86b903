"""Issue 24, F1, F3, F4 and F12 (/metrics): least privilege for what the engine and the admin show.

F1: anonymous /health/cron/ published failure text (an internal URL, a DSN with its password), pause
reasons and who paused, a stuck run's host and pid. F12: /metrics was readable by any staff user.
F3: a view-only staff user could revoke anyone's API tokens. F4: the admin showed tracebacks to staff
who were not superusers, while GraphQL hid them.
"""

import subprocess

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crm.models import ApiToken
from cronjobs import runner, views
from cronjobs.models import JobPause
from tests.crm.gql_helpers import logged_in, staff
from tests.factories import JobRunFactory, UserFactory

pytestmark = pytest.mark.django_db

NOOP = "tests.cronjobs.health_jobs.noop"
SECRET_TEXT = (
    "GraphQLClientError: HTTP 404 from http://10.1.2.3:8000/graphql?internal=1 postgres://crm:s3cret@db:5432/crm"
)
TOKEN = "metrics-token-for-tests"


@pytest.fixture
def troubled(settings):
    """A failing job whose failure names internals, a paused one, and a stuck one (its process is gone)."""
    settings.CRONJOBS = [
        ("0 * * * *", NOOP, {"name": "failing_job"}),
        ("0 * * * *", NOOP, {"name": "paused_job"}),
        ("0 2 * * 0", NOOP, {"name": "stuck_job"}),
    ]
    settings.CRONJOBS_METRICS_TOKEN = TOKEN
    JobRunFactory(job_name="failing_job", status="failed", result=SECRET_TEXT, traceback=f"Traceback...\n{SECRET_TEXT}")
    JobPause.objects.create(job_name="paused_job", paused_at=timezone.now(), paused_by="ada", reason="vendor x down")
    gone = subprocess.Popen(["true"])
    gone.wait()
    JobRunFactory(job_name="stuck_job", status="running", host=runner.HOST, pid=gone.pid)
    return gone.pid


class TestHealthBody:
    def test_anonymous_gets_the_status_and_the_names_only(self, troubled):
        response = Client().get("/health/cron/")
        body = response.json()
        assert response.status_code == 503
        assert body == {
            "status": "error",
            "late": [],
            "failing": ["failing_job"],
            "stuck": ["stuck_job"],
            "unhealthy": 2,
        }
        text = response.content.decode()  # finding 1: the URL, the DSN, "ada", the reason, host and pid
        for leak in ("10.1.2.3", "s3cret", "ada", "vendor x down", runner.HOST, str(troubled)):
            assert leak not in text

    def test_a_bearer_that_is_not_the_metrics_token_is_anonymous(self, troubled):
        response = Client().get("/health/cron/", HTTP_AUTHORIZATION="Bearer not-it")
        assert response.status_code == 503 and "jobs" not in response.json()

    @pytest.mark.parametrize(
        "reader",
        [
            lambda: Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}"),
            lambda: logged_in(staff("cronjobs.view_jobrun")),
            lambda: logged_in(UserFactory(is_staff=True, is_superuser=True)),
        ],
        ids=["metrics token", "staff with view_jobrun", "superuser"],
    )
    def test_details_for_staff_with_view_jobrun_or_the_metrics_token(self, troubled, reader):
        body = reader().get("/health/cron/").json()
        jobs = {job["name"]: job for job in body["jobs"]}
        assert SECRET_TEXT[:100] in jobs["failing_job"]["problem"]
        assert (jobs["paused_job"]["paused_by"], jobs["paused_job"]["pause_reason"]) == ("ada", "vendor x down")

    @pytest.mark.parametrize("permissions", [(), ("crm.view_order",)])
    def test_staff_without_view_jobrun_get_the_anonymous_body(self, troubled, permissions):
        body = logged_in(staff(*permissions)).get("/health/cron/").json()
        assert set(body) == {"status", "late", "failing", "stuck", "unhealthy"}

    def test_the_names_are_capped_with_the_count_of_all(self, settings):
        settings.CRONJOBS = [("0 * * * *", NOOP, {"name": f"job{i:03}"}) for i in range(views.MAX_PUBLIC_NAMES + 10)]
        for i in range(views.MAX_PUBLIC_NAMES + 10):
            JobRunFactory(job_name=f"job{i:03}", status="failed")
        body = Client().get("/health/cron/").json()
        assert len(body["failing"]) == views.MAX_PUBLIC_NAMES and body["unhealthy"] == views.MAX_PUBLIC_NAMES + 10


class TestMetrics:
    def test_staff_without_view_jobrun_get_404(self, troubled):
        assert logged_in(staff()).get("/metrics").status_code == 404  # finding 12: 200

    def test_staff_with_view_jobrun_and_the_token_read_it(self, troubled):
        assert logged_in(staff("cronjobs.view_jobrun")).get("/metrics").status_code == 200
        assert Client(HTTP_AUTHORIZATION=f"Bearer {TOKEN}").get("/metrics").status_code == 200


class TestAdmin:
    def test_view_only_staff_cannot_revoke_tokens(self):
        owner = UserFactory(username="jobs")
        token, _ = ApiToken.issue(user=owner, name="CRM_API_TOKEN")
        viewer = logged_in(staff("crm.view_apitoken"))
        url = reverse("admin:crm_apitoken_changelist")
        assert 'value="revoke"' not in viewer.get(url).content.decode()  # no such action offered
        viewer.post(url, {"action": "revoke", "_selected_action": [token.pk]})  # finding 3: revoked
        token.refresh_from_db()
        assert token.revoked_at is None
        changer = logged_in(staff("crm.view_apitoken", "crm.change_apitoken"))
        changer.post(url, {"action": "revoke", "_selected_action": [token.pk]})
        token.refresh_from_db()
        assert token.revoked_at is not None

    def test_tracebacks_for_superusers_only(self, troubled):
        run = JobRunFactory(job_name="failing_job", status="failed", traceback="Traceback: /srv/crm/secret_path.py")
        url = reverse("admin:cronjobs_jobrun_change", args=[run.pk])
        page = logged_in(staff("cronjobs.view_jobrun")).get(url)
        assert page.status_code == 200 and "secret_path" not in page.content.decode()  # finding 4: shown
        page = logged_in(UserFactory(is_staff=True, is_superuser=True)).get(url)
        assert "secret_path" in page.content.decode()
