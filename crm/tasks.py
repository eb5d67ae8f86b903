"""Celery tasks of the CRM: the weekly report as its own named task (found by the worker's autodiscovery)."""

from celery import shared_task

from cronjobs.beat import run_job_task


@shared_task(bind=True, name="crm.tasks.generate_crm_report")
def generate_crm_report(self, scheduled_for_iso: str | None = None, previous_run: int | None = None) -> dict:
    """Run the `generate_crm_report` job (crm.cron.generate_crm_report) through the runner.

    Beat (Monday 06:00, from CRONJOBS) passes the minute it fires for; a failed report fails the task.
    """
    return run_job_task(self, "generate_crm_report", scheduled_for_iso, previous_run)
