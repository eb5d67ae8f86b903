"""Delete (or, with order history, archive) customers with no order in the last N days."""

from django.core.management.base import BaseCommand, CommandError

from crm import cron, services


class Command(BaseCommand):
    help = (
        "Delete customers created over DAYS ago with no order since (default 365); customers with "
        "older orders are archived instead, so order history is never lost. --dry-run shows the counts."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=365)
        parser.add_argument("--dry-run", action="store_true", help="Count only; change nothing.")

    def handle(self, *args, days, dry_run, **options):
        if days < 1:
            raise CommandError(f"--days must be at least 1, got {days}")
        if dry_run:
            result = services.clean_inactive_customers(days=days, dry_run=True)
            names = list(services.inactive_customers(days=days).values_list("email", flat=True)[:50])
            self.stdout.write(f"Would delete {result.deleted} and archive {result.archived} inactive customers.")
            for email in names:
                self.stdout.write(f"  {email}")
        else:
            # The same code as the scheduled job, so the cleanup log gets its line.
            self.stdout.write(cron.clean_inactive_customers(days=days))
