"""`manage.py check --deploy` (run by `make serve` before it starts): what must not reach production."""

from django.conf import settings
from django.core import checks
from django.db import DatabaseError

from crm.management.commands.ensure_demo_user import DEMO_PASSWORD

WEAK_SECRET_KEY = "crm.E101"
DEMO_PASSWORD_KEPT = "crm.E102"


@checks.register(checks.Tags.security, deploy=True)
def check_secret_key(app_configs=None, **kwargs):
    """Django's security.W009 as an error: a short or repetitive key can be guessed (sessions, tokens)."""
    key = settings.SECRET_KEY or ""
    if len(key) >= 50 and len(set(key)) >= 5 and not key.startswith("django-insecure-"):
        return []
    return [
        checks.Error(
            f"DJANGO_SECRET_KEY is weak ({len(key)} characters, {len(set(key))} distinct): put 50+ random "
            f"characters in {settings.CRONJOBS_ENV_FILE}, e.g. python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(50))'",
            id=WEAK_SECRET_KEY,
        )
    ]


@checks.register(checks.Tags.security, deploy=True)
def check_demo_password(app_configs=None, **kwargs):
    """No superuser may keep the demo password `make run` gives its account (admin/admin)."""
    from django.contrib.auth import get_user_model

    try:
        superusers = list(get_user_model().objects.filter(is_superuser=True, is_active=True))
    except DatabaseError:  # not migrated yet (make serve checks before it migrates): nothing to check
        return []
    return [
        checks.Error(
            f"The superuser {user.get_username()!r} has the demo password {DEMO_PASSWORD!r}: set another with "
            f"python manage.py changepassword {user.get_username()}",
            id=DEMO_PASSWORD_KEPT,
        )
        for user in superusers
        if user.check_password(DEMO_PASSWORD)
    ]
