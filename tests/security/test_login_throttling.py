"""Issue 24, F6: no login throttling. 100 wrong passwords at the admin's login form, then the right one:
no delay, no lockout, logged in.

Now (django-axes, settings LOGIN_FAILURE_LIMIT and LOGIN_COOLOFF_MINUTES): after 5 failures the username
is locked from every address and the address for every username, for 15 minutes after the last failure;
`manage.py axes_reset_username` / `axes_reset_ip` / `axes_reset` and the admin (Axes › Access attempts)
unlock sooner. Real requests to the admin's login form through Django's test client; the project's
settings as they are (tests/settings.py leaves django-axes on), only the clock moved (time-machine).
"""

import datetime as dt

import pytest
import time_machine
from axes.exceptions import AxesBackendRequestParameterRequired
from axes.models import AccessAttempt
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from tests.factories import UserFactory
from tests.security.test_config import STRONG, run_manage

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests"  # UserFactory's
ATTACKER, OTHER = "203.0.113.7", "198.51.100.20"
LOCKED = "Account locked: too many failed logins."


@pytest.fixture
def admin():
    return UserFactory(username="admin", is_staff=True, is_superuser=True)


@pytest.fixture
def clerk():
    return UserFactory(username="clerk", is_staff=True)


def log_in(username: str, password: str, address: str) -> tuple[int, str, Client]:
    """POST the admin's login form from ``address``: (status, body, the client with its session)."""
    client = Client(REMOTE_ADDR=address)
    response = client.post("/admin/login/?next=/admin/", {"username": username, "password": password})
    return response.status_code, response.content.decode(), client


def logged_in(username: str, address: str) -> bool:
    status, _, client = log_in(username, PASSWORD, address)
    return status == 302 and client.get("/admin/").status_code == 200


def fail(username: str, address: str, times: int) -> list[int]:
    return [log_in(username, "wrong", address)[0] for _ in range(times)]


def test_a_hundred_wrong_passwords_then_the_right_one_is_refused(admin):
    statuses = fail("admin", ATTACKER, 100)  # before: 100 x 200 (the form again), then logged in
    assert statuses == [200] * 4 + [429] * 96
    status, body, client = log_in("admin", PASSWORD, ATTACKER)
    assert status == 429 and body.startswith(LOCKED) and "15 minutes" in body
    assert client.get("/admin/").status_code == 302  # to the login page: not logged in


def test_four_failures_do_not_lock(admin):
    assert fail("admin", ATTACKER, 4) == [200] * 4
    assert logged_in("admin", ATTACKER)


def test_the_lock_is_per_user_and_per_address(admin, clerk):
    fail("admin", ATTACKER, 5)
    assert logged_in("clerk", OTHER)  # another user at another address: unaffected
    assert log_in("admin", PASSWORD, OTHER)[0] == 429  # the username is locked wherever it comes from
    assert log_in("clerk", PASSWORD, ATTACKER)[0] == 429  # the address is locked for every username


def test_spreading_failures_over_usernames_or_addresses_does_not_escape_the_lock(admin, clerk):
    for number in range(5):
        log_in(f"guess{number}", "wrong", ATTACKER)  # one address, five usernames
    assert log_in("admin", PASSWORD, ATTACKER)[0] == 429
    for number in range(5):
        log_in("clerk", "wrong", f"192.0.2.{number}")  # one username, five addresses
    assert log_in("clerk", PASSWORD, OTHER)[0] == 429
    assert logged_in("admin", OTHER)


def test_the_lock_ends_after_the_cool_off(admin):
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        fail("admin", ATTACKER, 5)
        clock.move_to(start + dt.timedelta(minutes=14))
        assert log_in("admin", PASSWORD, ATTACKER)[0] == 429
        fail("admin", ATTACKER, 3)  # refused while locked: not counted, the lock is not extended
        clock.move_to(start + dt.timedelta(minutes=15, seconds=1))
        assert logged_in("admin", ATTACKER)


def test_the_unlock_commands(admin, clerk):
    fail("admin", ATTACKER, 5)
    call_command("axes_reset_username", "admin")  # its failures, from whichever address
    assert logged_in("admin", OTHER) and logged_in("admin", ATTACKER)
    for number in range(5):
        log_in(f"guess{number}", "wrong", ATTACKER)
    assert log_in("clerk", PASSWORD, ATTACKER)[0] == 429
    call_command("axes_reset_ip", ATTACKER)  # the address's failures, whichever username
    assert logged_in("clerk", ATTACKER)
    fail("admin", ATTACKER, 5)
    call_command("axes_reset")  # everything
    assert logged_in("admin", ATTACKER)


def test_the_admin_unlocks(admin, clerk):
    fail("clerk", ATTACKER, 5)
    _, _, client = log_in("admin", PASSWORD, OTHER)
    page = client.get("/admin/axes/accessattempt/")
    assert page.status_code == 200 and "clerk" in page.content.decode()
    selected = list(AccessAttempt.objects.values_list("pk", flat=True))
    response = client.post(
        "/admin/axes/accessattempt/", {"action": "delete_selected", "_selected_action": selected, "post": "yes"}
    )
    assert response.status_code == 302 and not AccessAttempt.objects.exists()
    assert logged_in("clerk", ATTACKER)


def test_a_password_check_without_the_request_is_an_error_not_an_unthrottled_login(admin):
    with pytest.raises(AxesBackendRequestParameterRequired):
        authenticate(username="admin", password=PASSWORD)
    with pytest.raises(AxesBackendRequestParameterRequired):  # so tests log in with force_login()
        Client().login(username="admin", password=PASSWORD)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LOGIN_FAILURE_LIMIT": "0"}, "error: LOGIN_FAILURE_LIMIT must be at least 1, got 0"),
        ({"LOGIN_COOLOFF_MINUTES": "0"}, "error: LOGIN_COOLOFF_MINUTES must be at least 1, got 0"),
        ({"LOGIN_FAILURE_LIMIT": "many"}, "error: LOGIN_FAILURE_LIMIT must be an integer, got 'many'"),
    ],
)
def test_the_settings_refuse_what_would_not_lock(env, message):
    done = run_manage({"DJANGO_SECRET_KEY": STRONG, **env})
    assert done.returncode == 1 and done.stderr.startswith(message), done.stderr


def test_the_limits_come_from_the_environment():
    shown = "from django.conf import settings as s; print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME)"
    env = {"DJANGO_SECRET_KEY": STRONG}
    assert run_manage(env, "shell", "--no-imports", "-c", shown).stdout == "5 0:15:00\n"
    env |= {"LOGIN_FAILURE_LIMIT": "10", "LOGIN_COOLOFF_MINUTES": "60"}
    assert run_manage(env, "shell", "--no-imports", "-c", shown).stdout == "10 1:00:00\n"
