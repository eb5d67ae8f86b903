"""The scheduling engine: runs the jobs declared in CRONJOBS, whatever fires them."""

from django.apps import AppConfig


class CronjobsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "cronjobs"
    verbose_name = "Scheduled jobs"

    def ready(self) -> None:
        # Registers the system checks, the registry's setting_changed receiver and the alert receivers.
        from cronjobs import alerts, checks, registry  # noqa: F401
