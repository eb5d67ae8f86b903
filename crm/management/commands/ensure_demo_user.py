"""Make sure the demo staff account exists (development only) and say how to log in."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "admin"  # noqa: S105 - a known demo password, refused outside DEBUG


class Command(BaseCommand):
    help = "Create the demo superuser admin/admin if missing (refused unless DJANGO_DEBUG is on)."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="Where the server listens.")

    def handle(self, *args, url, **options):
        if not settings.DEBUG:
            raise CommandError(
                "Refusing to create a demo account with a known password while DJANGO_DEBUG is off; "
                "use manage.py createsuperuser."
            )
        User = get_user_model()
        user = User.objects.filter(username=DEMO_USERNAME).first()
        if user is None:
            User.objects.create_superuser(DEMO_USERNAME, "admin@example.com", DEMO_PASSWORD)
            password_note = f"password {DEMO_PASSWORD!r}"
        elif user.check_password(DEMO_PASSWORD):
            password_note = f"password {DEMO_PASSWORD!r} (the demo default, unchanged)"
        else:
            password_note = "the password you set (no longer the demo default)"
        self.stdout.write(
            f"Log in at {url}/admin/ as {DEMO_USERNAME!r} with {password_note}; GraphiQL is at {url}/graphql"
        )
