"""The scheduling engine: runs the jobs declared in CRONJOBS, whatever fires them."""

from django.apps import AppConfig


class CronjobsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "cronjobs"
    verbose_name = "Scheduled jobs"

    def ready(self) -> None:
        # Registers the system checks and the registry's setting_changed receiver.
        from cronjobs import checks, registry  # noqa: F401
