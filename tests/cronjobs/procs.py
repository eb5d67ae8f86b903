"""Long-running processes the scheduler tests start (`crontab work`, Celery worker and beat), with their output."""

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.cronjobs.conftest import ROOT, SUBPROCESS_SETTINGS, clean_env

WAIT = 200  # seconds: a minute boundary, process start-up and a slow CI machine, never a measured duration


def _default_sigint() -> None:
    """In the child before exec: SIGINT back to its default action. A test run in the background
    (`make test &`) inherits SIGINT ignored, exec keeps it ignored, and a shell started with a signal
    ignored can never trap it: bin/run would sit through the test's Ctrl-C. A terminal's job never
    starts with SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Proc:
    """A started process whose merged stdout/stderr is collected line by line while it runs."""

    def __init__(self, name: str, argv: list[str], env: dict, terminal_job: bool = False):
        self.name = name
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            # terminal_job: started as a shell in a terminal starts a job, so that a test can press Ctrl-C.
            start_new_session=terminal_job,  # a process group of its own
            preexec_fn=_default_sigint if terminal_job else None,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def has(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def wait_for(self, text: str, timeout: float = WAIT) -> str:
        """The first line containing `text`, waiting for it (an event, not a duration)."""
        deadline = time.monotonic() + timeout
        while True:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.process.poll() is not None:
                self._reader.join(5)
                pytest.fail(f"{self.name} exited ({self.process.returncode}) before printing {text!r}:\n{self.output}")
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name} never printed {text!r}:\n{self.output}")
            time.sleep(0.05)

    def signal(self, signum=signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self, timeout: float = WAIT) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def stop(self) -> None:
        """Stop it whatever happened (test teardown)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._reader.join(5)


def start_work(config: Path, *args: str, name: str = "crontab work") -> Proc:
    return Proc(
        name,
        [sys.executable, "manage.py", "crontab", "work", *args, f"--settings={SUBPROCESS_SETTINGS}"],
        clean_env(CRONJOBS_TEST_CONFIG=str(config), PYTHONUNBUFFERED="1"),
    )


def celery_env(config: Path, broker_url: str) -> dict:
    return clean_env(
        CRONJOBS_TEST_CONFIG=str(config),
        DJANGO_SETTINGS_MODULE=SUBPROCESS_SETTINGS,
        CELERY_BROKER_URL=broker_url,
        PYTHONUNBUFFERED="1",
    )


def start_celery_worker(config: Path, broker_url: str, node: str) -> Proc:
    argv = [sys.executable, "-m", "celery", "-A", "alx_backend_graphql_crm", "worker", "-l", "info"]
    # solo pool: one process, tasks in its main thread (the runner's timeout uses SIGALRM there);
    # no gossip/mingle/heartbeat: nothing to exchange with other workers on the same Redis.
    argv += ["--pool", "solo", "-n", f"{node}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    return Proc("celery worker", argv, celery_env(config, broker_url))


def start_celery_beat(config: Path, broker_url: str, folder: Path) -> Proc:
    argv = [sys.executable, "-m", "celery", "-A", "alx_backend_graphql_crm", "beat", "-l", "info"]
    argv += ["--schedule", str(folder / "beat-schedule"), "--pidfile", str(folder / "beat.pid")]
    return Proc("celery beat", argv, celery_env(config, broker_url))
