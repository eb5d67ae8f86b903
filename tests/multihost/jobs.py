"""Job callables of the multi-host kit: each says where and when it ran, on the database's clock."""

import json
import os
import socket
import time
from pathlib import Path

from django.db import connection


def database_now() -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXTRACT(EPOCH FROM clock_timestamp())")
        return float(cursor.fetchone()[0])


def _note(folder: str | None, what: str, **fields) -> None:
    if folder:
        line = json.dumps({"what": what, "host": socket.gethostname(), "pid": os.getpid(), **fields})
        with open(Path(folder) / "executions.jsonl", "a") as notes:
            notes.write(line + "\n")


def hold(seconds: float, folder: str | None = None, release: str | None = None, job: str = "") -> str:
    """Run for `seconds` (or until the file `release` exists). With `folder`, note the start (on the
    database's clock) and the end (this host's clock: the database may be cut off by then) of `job` in
    folder/executions.jsonl, also when the job is stopped."""
    if folder:
        _note(folder, "start", job=job, at=database_now())
    ended = "stopped"
    try:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if release and Path(release).exists():
                break
            time.sleep(0.05)
        ended = "finished"
    finally:
        _note(folder, ended, job=job, local=time.time())
    return f"held on {socket.gethostname()}"
