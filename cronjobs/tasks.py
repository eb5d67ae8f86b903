"""Celery tasks of the scheduling engine, found by the worker's autodiscovery (Django alone never imports this)."""

from cronjobs.beat import run_cronjob

__all__ = ["run_cronjob"]
