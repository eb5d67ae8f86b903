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


def fail_then_succeed(counter_path, failures=2):
    """Fail the first `failures` calls (counted in a file, so it works across processes), then succeed."""
    path = Path(counter_path)
    calls = int(path.read_text()) + 1 if path.exists() else 1
    path.write_text(str(calls))
    if calls <= failures:
        raise ConnectionError(f"transient failure {calls}")
    return f"succeeded on call {calls}"


def print_and_log(size=0):
    """Write to stdout, stderr and logging; with `size`, print that many bytes of numbered lines."""
    import logging
    import sys

    print("to stdout")
    print("to stderr", file=sys.stderr)
    logging.getLogger("tests.cronjobs.jobs").warning("to logging")
    written = 0
    line_number = 0
    while written < size:
        line = f"line {line_number:06d} " + "x" * 50 + "\n"
        sys.stdout.write(line)
        written += len(line)
        line_number += 1
    print("the end")
    return "printed"


def print_then_loop():
    print("before the timeout")
    loop_forever()


def print_then_interrupt():
    print("before Ctrl-C")
    raise KeyboardInterrupt


def fail_while(flag_path):
    """Fail while `flag_path` exists, succeed once it is gone (a job that breaks and recovers)."""
    if Path(flag_path).exists():
        raise RuntimeError(f"failing while {flag_path} exists")
    return "fine again"


def interrupt():
    """As if Ctrl-C reached the job."""
    raise KeyboardInterrupt


def fail_first_time(marker_path):
    """Fail on the first call (leaving `marker_path`), succeed on every later one: a retry that works."""
    marker = Path(marker_path)
    if not marker.exists():
        marker.touch()
        raise RuntimeError("first attempt fails")
    return "second attempt works"


def own_process():
    """Where the job runs: its pid, its parent's pid and its process group."""
    return f"{os.getpid()} {os.getppid()} {os.getpgrp()}"


def swallow_everything(marker_path):
    """Catch every exception, the stop signal included, and keep writing to `marker_path`: only a
    SIGKILL ends it."""
    while True:
        try:
            with open(marker_path, "a") as handle:
                handle.write("x")
            time.sleep(0.05)
        except BaseException:  # noqa: S110, BLE001 - the fault under test
            pass


def catch_stop_and_succeed():
    """Catch the stop (a KeyboardInterrupt) and return as if all went well."""
    try:
        while True:
            time.sleep(0.01)
    except KeyboardInterrupt:
        return "pretended to succeed"


def start_sleeper(pid_path):
    """Start a grandchild process that would sleep for a minute, then loop: the timeout must end both."""
    import subprocess

    sleeper = subprocess.Popen(["sleep", "60"])
    Path(pid_path).write_text(str(sleeper.pid))
    loop_forever()


def write_everywhere():
    """Output by print(), by logging, and by a subprocess writing to the inherited descriptors."""
    import logging
    import subprocess

    print("printed")
    logging.getLogger("tests.cronjobs.jobs").warning("logged")
    subprocess.run(["echo", "from a subprocess"], check=True)
    return "wrote"


def sleep_then_succeed(seconds):
    """A job that takes `seconds` (the length of a real restock or report run by hand)."""
    time.sleep(seconds)
    return f"slept {seconds:g} s"
