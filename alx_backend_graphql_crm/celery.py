"""The Celery app: broker settings.CELERY_BROKER_URL, CELERY_* settings, and a beat schedule generated from CRONJOBS.

Run with `celery -A alx_backend_graphql_crm worker -l info` and `celery -A alx_backend_graphql_crm beat -l info`.
Only Celery processes import this module (see alx_backend_graphql_crm/__init__.py).
"""

from celery import Celery

from alx_backend_graphql_crm.env import bootstrap

bootstrap()  # the env file, then the settings: a missing DJANGO_SECRET_KEY is one line and exit 1

app = Celery("alx_backend_graphql_crm")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Jobs with a named task of their own instead of the generic cronjobs.run_cronjob; their schedule
# still comes from CRONJOBS (generate_crm_report: Monday 06:00).
CRONJOB_TASKS = {"generate_crm_report": "crm.tasks.generate_crm_report"}


@app.on_after_configure.connect
def _install_beat_schedule(sender, **kwargs):
    # After configuration, so settings are read once Celery asks for them, not at import.
    from django.conf import settings

    from cronjobs.beat import beat_schedule

    sender.conf.timezone = settings.TIME_ZONE
    # The scheduler that puts each message's scheduled minute into it (cronjobs/beat.py).
    if sender.conf.beat_scheduler == "celery.beat:PersistentScheduler":
        sender.conf.beat_scheduler = "cronjobs.beat:CronJobScheduler"
    sender.conf.beat_schedule = {**beat_schedule(CRONJOB_TASKS), **(sender.conf.beat_schedule or {})}
