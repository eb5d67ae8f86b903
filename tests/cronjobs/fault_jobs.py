"""Job callables the fault catalogue (test_faults.py) points CRONJOBS at: each misbehaves in one way."""

import os
import time
from pathlib import Path

from django.db import connection, transaction


def wait_for_release(started_path, release_path):
    """Say it started (with its pid), then hold the run open until `release_path` exists."""
    Path(started_path).write_text(str(os.getpid()))
    deadline = time.monotonic() + 120  # never hang a test run forever
    while not Path(release_path).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return "released"


def swallow_timeout(started_path, release_path):
    """A job that catches everything, the timeout included, and carries on."""
    Path(started_path).write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while not Path(release_path).exists() and time.monotonic() < deadline:
        try:
            time.sleep(0.02)
        except BaseException:  # noqa: S110, BLE001 - the fault under test
            pass
    return "finished anyway"


def signal_supervisor(signum):
    """The supervising process gets a stop signal while the job runs (as from `kill` or a closing terminal)."""
    os.kill(os.getppid(), signum)
    time.sleep(5)  # the stop arrives before this ends
    return "not interrupted"


def update_then_swallow(product_id, started_path):
    """Change a product inside a transaction, then refuse to stop: only a SIGKILL ends it, and then
    the supervisor must make sure the open transaction is rolled back."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("UPDATE crm_product SET stock = stock + 1000 WHERE id = %s", [product_id])
        Path(started_path).write_text(str(os.getpid()))
        while True:
            try:
                time.sleep(0.02)
            except BaseException:  # noqa: S110, BLE001 - the fault under test
                pass


def slow_update(product_id, seconds):
    """One UPDATE that takes `seconds` on the server (PostgreSQL), in autocommit."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE crm_product SET stock = stock + 1000 WHERE id = %s AND pg_sleep(%s) IS NOT NULL",
            [product_id, seconds],
        )
    return "updated"


def update_past_statement_timeout(product_id, timeout_ms):
    """One UPDATE the server ends at `timeout_ms` (the session's statement_timeout, set here as the job's
    process sets it to the job's timeout)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', %s, false)", [f"{timeout_ms}ms"])
        cursor.execute(
            "UPDATE crm_product SET stock = stock + 1000 WHERE id = %s AND pg_sleep(5) IS NOT NULL", [product_id]
        )
    return "updated"
