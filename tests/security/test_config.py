"""Issue 24, F12 and the newcomer's findings (and issue 25, item 9): what `make serve` refuses, says and sends.

F12: the demo account admin/admin survived into production, DJANGO_SECRET_KEY=x was accepted (W009
only a warning), no Content-Security-Policy. A disallowed Host logged a traceback naming ALLOWED_HOSTS;
an empty DJANGO_ALLOWED_HOSTS started a server answering 400 to everything. Issue 25: the missing-key
hint suggested DJANGO_DEBUG=1 (bin/serve overrides it), redirects to HTTPS left nothing in the log,
GraphiQL had no schema in production.
"""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client

from tests.crm.gql_helpers import logged_in, staff, user_with

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
STRONG = "k" * 30 + "-Ab3$kQ9!zR7pL2mN8vW4yT6uE1oI5"


def deploy_check_errors() -> str:
    try:
        call_command("check", deploy=True, fail_level="ERROR", stdout=open(os.devnull, "w"))  # noqa: SIM115
    except SystemCheckError as exc:
        return str(exc)
    return ""


def test_a_weak_secret_key_is_an_error(settings):
    settings.SECRET_KEY = "x"
    errors = deploy_check_errors()  # finding 12: security.W009, a warning
    assert "crm.E101" in errors and "DJANGO_SECRET_KEY is weak (1 characters" in errors
    settings.SECRET_KEY = STRONG
    assert "crm.E101" not in deploy_check_errors()


def test_a_superuser_with_the_demo_password_is_an_error(settings):
    settings.SECRET_KEY = STRONG
    User.objects.create_superuser("admin", "admin@example.com", "admin")
    errors = deploy_check_errors()  # finding 12: make serve started with it
    assert "crm.E102" in errors and "python manage.py changepassword admin" in errors
    User.objects.filter(username="admin").update(password="!")
    assert "crm.E102" not in deploy_check_errors()


def run_manage(env: dict, *command: str) -> subprocess.CompletedProcess:
    """`manage.py check` (or ``command``) with the project's settings, ``env`` and nothing of the caller's."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CRM_", "LOGIN_"))}
    env = {**clean, "CRM_ENV_FILE": os.devnull, "DJANGO_DEBUG": "0", **env}
    args = [sys.executable, "manage.py", *(command or ["check"])]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)


def test_an_empty_allowed_hosts_refuses_to_start():
    done = run_manage({"DJANGO_SECRET_KEY": STRONG, "DJANGO_ALLOWED_HOSTS": ""})  # before: started, 400 to all
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: DJANGO_ALLOWED_HOSTS is empty")


def test_the_missing_key_hint_names_the_file_and_not_debug():
    done = run_manage({})
    assert done.returncode == 1 and "DJANGO_DEBUG=1" not in done.stderr  # issue 25: bin/serve overrides it
    assert f"in {os.devnull}" in done.stderr and "token_urlsafe(50)" in done.stderr


def test_a_disallowed_host_is_one_line_naming_the_variable(caplog):
    caplog.set_level(logging.WARNING)
    response = Client().get("/health/", HTTP_HOST="evil.example")
    assert response.status_code == 400
    lines = [r for r in caplog.records if r.name == "django.security.DisallowedHost"]
    assert len(lines) == 1 and not lines[0].exc_info  # before: a traceback naming ALLOWED_HOSTS
    assert lines[0].getMessage() == (
        "Refused a request for host 'evil.example': not in DJANGO_ALLOWED_HOSTS "
        "(add it there, comma separated, in .env)"
    )


@pytest.mark.parametrize("path", ["/admin/login/", "/graphql"])
def test_every_html_page_has_a_content_security_policy(path):
    response = Client().get(path, HTTP_ACCEPT="text/html")
    policy = response["Content-Security-Policy"]  # finding 12: none
    assert "script-src 'self'" in policy and "default-src 'self'" in policy and "unsafe-eval" not in policy


def test_a_redirect_to_https_is_logged_naming_the_setting(settings, caplog):
    settings.SECURE_SSL_REDIRECT = True
    response = Client().get("/admin/login/")
    assert response.status_code == 301 and response["Location"].startswith("https://")
    logged = [r.getMessage() for r in caplog.records if r.name == "alx_backend_graphql_crm.security"]
    assert len(logged) == 1 and "DJANGO_SECURE_SSL_REDIRECT is on" in logged[0]  # issue 25: nothing logged


INTROSPECT = json.dumps({"query": "{ __schema { queryType { name } } }"})


def test_graphiql_has_the_schema_for_staff_only_in_production(settings):
    settings.DEBUG, settings.GRAPHQL_INTROSPECTION = False, None
    for client, allowed in [
        (Client(), False),
        (logged_in(user_with("crm.view_order")), False),
        (logged_in(staff()), True),  # issue 25: 400 for everyone in production
    ]:
        response = client.post("/graphql", INTROSPECT, content_type="application/json")
        body = response.json()
        if allowed:
            assert body == {"data": {"__schema": {"queryType": {"name": "Query"}}}}
        else:
            assert response.status_code == 400 and "introspection" in body["errors"][0]["message"].lower()
