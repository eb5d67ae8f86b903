"""The CRM domain app."""

from django.apps import AppConfig


class CrmConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "crm"
    verbose_name = "CRM"

    def ready(self):
        from crm import checks  # noqa: F401 - registers the deploy checks
