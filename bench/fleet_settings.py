"""The bench's settings with a generated fleet (bench/fleet.py): BENCH_FLEET_JOBS jobs `job_<i>`, a no-op each,
at `<i % 60> * * * *` as the issue measured them, or all at BENCH_FLEET_SCHEDULE (figure 15: every minute)."""

import os

from bench.settings import *  # noqa: F403

_schedule = os.environ.get("BENCH_FLEET_SCHEDULE")
CRONJOBS = [
    (_schedule or f"{i % 60} * * * *", "bench.jobs.noop", {"name": f"job_{i}"})
    for i in range(int(os.environ["BENCH_FLEET_JOBS"]))
]
