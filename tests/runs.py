"""Runs handed to a supervising process (cronjobs.runner.start: the admin's Run now, GraphQL runCronJob,
the fire endpoint), in tests.

`start()` claims the run and starts `manage.py crontab run <job> --claimed-run <id>`. A test's own
database (SQLite in memory, or a transaction rolled back at the end) is one no other process can see,
so by default tests/conftest.py records the hand-over instead of starting the process, and a test
finishes the run with `finish_detached()`: the same code the process runs (adopt, then supervise).
Tests that ask for the `real_supervisors` fixture start the real process; they use a database it can
reach (transactional, PostgreSQL) — see tests/cronjobs/test_run_now.py and tests/e2e.
"""

from cronjobs import runner
from cronjobs.models import JobRun


def finish_detached(record: JobRun) -> JobRun:
    """Do what `crontab run --claimed-run <id>` does for a run start() handed over; return it, recorded."""
    job, adopted = runner.adopt(record.pk)
    return runner.supervise(job, adopted)
