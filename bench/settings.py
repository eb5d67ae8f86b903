"""The project's settings plus a no-op job, for measuring the scheduling engine's overhead."""

from alx_backend_graphql_crm.settings import *  # noqa: F403
from alx_backend_graphql_crm.settings import CRONJOBS

CRONJOBS = [*CRONJOBS, ("* * * * *", "bench.jobs.noop", {"name": "bench_noop"})]
