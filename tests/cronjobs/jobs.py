"""Job callables the cronjobs tests point CRONJOBS at."""

import os
import time
from pathlib import Path

NOT_CALLABLE = 42


def succeed():
    return "all good"


def add(a, b=0):
    return a + b


def return_nothing():
    return None


def boom():
    raise ValueError("boom from a test job")


def exit_hard():
    raise SystemExit(3)


def loop_forever():
    # Pure Python, so both timeout mechanisms (SIGALRM and the injected exception) can stop it.
    while True:
        time.sleep(0.01)


def mutate_args(items):
    items.append("mutated")
    return len(items)


def append_line(path, text="ran"):
    with open(path, "a") as handle:
        handle.write(f"{text} {os.getpid()}\n")
    return f"appended to {path}"


def wait_for_release(started_path, release_path):
    """Say it started, then hold the run open until the test creates `release_path`."""
    Path(started_path).write_text(str(os.getpid()))
    deadline = time.monotonic() + 300  # never hang a test run forever
    while not Path(release_path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("never released")
        time.sleep(0.02)
    return "released"


def fail_while(flag_path):
    """Fail while `flag_path` exists, succeed once it is gone (a job that breaks and recovers)."""
    if Path(flag_path).exists():
        raise RuntimeError(f"failing while {flag_path} exists")
    return "fine again"


def interrupt():
    """As if Ctrl-C reached the job."""
    raise KeyboardInterrupt
