"""Project wiring: settings from the environment, deploy checks, commands, admin."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from crm.models import ApiToken, Customer, Order, Product
from tests.factories import UserFactory

ROOT = Path(__file__).resolve().parent.parent


def manage(*args, env=None):
    base = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=base, capture_output=True, text=True, timeout=120
    )


def test_startup_refused_without_secret_key_when_debug_off():
    result = manage("check", env={"DJANGO_DEBUG": "0"})
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


def test_check_deploy_clean_with_production_variables(sqlite_file):
    # A database of its own: the checkout's db.sqlite3 holds `make run`'s demo account, which
    # `check --deploy` rightly refuses (crm.E102).
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "DJANGO_SECRET_KEY": "x" * 40 + "-Ab3$kQ9!zR7pL2mN8vW4yT6uE1oI5",
            "DJANGO_ALLOWED_HOSTS": "crm.example.com",
            "DATABASE_URL": f"sqlite:///{sqlite_file}",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.django_db
def test_seed_db_is_idempotent(capsys):
    call_command("seed_db")
    counts = (Customer.objects.count(), Product.objects.count(), Order.objects.count())
    assert all(counts)
    call_command("seed_db")
    assert (Customer.objects.count(), Product.objects.count(), Order.objects.count()) == counts
    assert "created 0 customers, 0 products, 0 orders" in capsys.readouterr().out


@pytest.mark.django_db
def test_create_api_token_prints_once_and_stores_only_a_hash(capsys):
    user = UserFactory(username="api")
    call_command("create_api_token", "api")
    raw = capsys.readouterr().out.strip()
    token = ApiToken.objects.get()
    assert len(raw) >= 40 and raw not in token.token_hash and token.prefix == raw[:8]
    assert ApiToken.authenticate(raw) == user
    token.revoked_at = token.created_at
    token.save()
    assert ApiToken.authenticate(raw) is None


@pytest.mark.django_db
def test_create_api_token_unknown_user():
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("create_api_token", "ghost")


@pytest.mark.django_db
def test_demo_user_refused_when_debug_off(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DJANGO_DEBUG"):
        call_command("ensure_demo_user")


@pytest.mark.django_db
def test_demo_user_says_the_password_that_works(settings, capsys):
    """The second `make run` must not speak of a password the user set when nobody changed it."""
    from django.contrib.auth import get_user_model

    settings.DEBUG = True
    url = "http://127.0.0.1:8000"
    login = f"Log in at {url}/admin/ as 'admin' with"
    call_command("ensure_demo_user")
    assert capsys.readouterr().out.startswith(f"{login} password 'admin'; GraphiQL is at {url}/graphql")
    call_command("ensure_demo_user")  # the next `make run`, nothing changed
    assert capsys.readouterr().out.startswith(f"{login} password 'admin' (the demo default, unchanged);")
    user = get_user_model().objects.get(username="admin")
    user.set_password("changed-it-1234")
    user.save()
    call_command("ensure_demo_user")
    assert capsys.readouterr().out.startswith(f"{login} the password you set (no longer the demo default);")


@pytest.mark.django_db
def test_admin_pages_render(admin_client):
    call_command("seed_db")
    order = Order.objects.first()
    for url in [
        "/admin/crm/customer/?q=alice",
        "/admin/crm/product/",
        "/admin/crm/order/?q=Laptop",
        f"/admin/crm/order/{order.pk}/change/",
        "/admin/crm/apitoken/",
    ]:
        response = admin_client.get(url)
        assert response.status_code == 200, url
    assert b"Laptop" in admin_client.get(f"/admin/crm/order/{order.pk}/change/").content
