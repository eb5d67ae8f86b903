"""The project package; `celery_app` is the Celery app, imported on first use so Django alone never imports Celery."""

__all__ = ("celery_app",)


def __getattr__(name):
    # The usual `from .celery import app as celery_app` would import Celery in every Django
    # process (each `crontab run` included); Celery finds the app through the package anyway.
    if name == "celery_app":
        from alx_backend_graphql_crm.celery import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
