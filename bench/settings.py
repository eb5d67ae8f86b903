"""The project's settings plus a no-op job, for measuring the scheduling engine's overhead."""

from alx_backend_graphql_crm.settings import *  # noqa: F403
from alx_backend_graphql_crm.settings import CRONJOBS

CRONJOBS = [*CRONJOBS, ("* * * * *", "bench.jobs.noop", {"name": "bench_noop"})]
# No collectstatic for the benchmarks: the plain storage.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
