"""Create a bearer token for an API client and print it once."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from crm.models import ApiToken


class Command(BaseCommand):
    help = "Create an API bearer token for USERNAME and print it once (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label to recognise the token in the admin.")

    def handle(self, *args, username, name, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}. Create one first (manage.py createsuperuser).")
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive; its tokens would not authenticate.")
        _, raw = ApiToken.issue(user=user, name=name)
        self.stdout.write(raw)
        self.stderr.write(
            "Send it as 'Authorization: Bearer <token>'. It is shown only now; revoke it in the admin (API tokens)."
        )
