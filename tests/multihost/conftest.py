"""The multi-host kit: several machines sharing one PostgreSQL database, simulated on this one.

A host is a set of process trees with a hostname of their own (`unshare --uts`, then `hostname
<name>`), reaching the database through the host's own TCP proxy (tests/multihost/proxy.py: cut it for
a partition, heal it), optionally with a skewed clock (libfaketime: FAKETIME="+90s" and LD_PRELOAD).
Each host reads its settings from the JSON file tests/cronjobs/subprocess_settings.py reads, with the
database behind its proxy and short leases (CRONJOBS_LEASE_SECONDS = LEASE), so cases take seconds.

Tests here carry `slow`, `postgres` and `multihost` (root, unshare and libfaketime; tests/reachable.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

from cronjobs.models import JobRun
from tests.cronjobs.conftest import ROOT, SUBPROCESS_SETTINGS, SharedDb, clean_env, write_config
from tests.cronjobs.procs import Proc
from tests.reachable import LIBFAKETIME

PROXY = Path(__file__).with_name("proxy.py")
JOBS = "tests.multihost.jobs"
LEASE = 1.0  # CRONJOBS_LEASE_SECONDS in the kit: a lease lasts 3 s without renewal
TTL = 3 * LEASE
SETTINGS = {
    "CRONJOBS_LEASE_SECONDS": LEASE,
    "CRONJOBS_STOP_WAIT": 1.0,
    # The outcome of a run cut off from the database is saved again after 0.5, 1, 2, 5, 10... seconds.
    "CRONJOBS_SAVE_RETRY_DELAYS": [0.5, 1, 2, 5, 10, 20, 30],
    "CRONJOBS_CLOCK_SKEW_WARN": 2.0,
    "CRONJOBS_CLOCK_SKEW_MAX": 300.0,
}
METRICS_TOKEN = "multihost-kit-token"
# Lines that mean a host cannot do what the case needs: waiting on is pointless.
BROKEN = ("CRONJOBS REFUSED", "Traceback (most recent call last)", "runner error:")
WAIT = 200  # seconds: a minute boundary plus start-up on a loaded machine, never a measured duration


class DatabaseProxy:
    """tests/multihost/proxy.py as a process of this test: cut, silent, heal."""

    def __init__(self, target_host: str, target_port: int, address: str = "127.0.0.1"):
        self.address = address
        self.process = subprocess.Popen(
            [sys.executable, str(PROXY), target_host, str(target_port), address],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        first = self.process.stdout.readline().split()
        assert first[:1] == ["listening"], first
        self.port = int(first[1])
        self.mode = "open"

    def command(self, word: str) -> None:
        self.process.stdin.write(word + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline().strip()
        assert answer == f"ok {word}", answer
        self.mode = word

    def cut(self) -> None:
        self.command("cut")

    def silent(self) -> None:
        self.command("silent")

    def heal(self) -> None:
        self.command("heal")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def process_tree(roots: list[int]) -> set[int]:
    """Every live process descending from `roots` (the roots included), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid in found or not os.path.exists(f"/proc/{pid}"):
            continue
        found.add(pid)
        todo.extend(children.get(pid, []))
    return found


def processes_with(variable: str) -> set[int]:
    """Every process whose environment holds `variable` (NAME=value): every process a host started, its
    orphans included (a runner whose `crontab work` was killed)."""
    found = set()
    needle = variable.encode() + b"\0"
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as environ:
                    if needle in environ.read() + b"\0":
                        found.add(int(entry))
            except OSError:
                continue
    return found


def _signal_all(pids: set[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def freeze_and_kill(roots: list[int], variable: str) -> set[int]:
    """SIGKILL a host's processes at once, as a machine dies: the trees under `roots` and every process
    whose environment holds `variable`. Every one is stopped first (so none forks or reacts meanwhile),
    then all are killed. Returns the pids killed."""
    stopped: set[int] = set()
    while new := (process_tree(roots) | processes_with(variable)) - stopped:
        _signal_all(new, signal.SIGSTOP)
        stopped |= new
    _signal_all(stopped, signal.SIGKILL)
    return stopped


@dataclass
class Host:
    """A simulated machine: its name, its proxy to the database, its clock, its processes."""

    name: str
    kit: Kit
    proxy: DatabaseProxy
    config: Path
    folder: Path
    skew: str | None = None  # libfaketime offset, e.g. "+90s", "-90s", "+10m"
    procs: list[Proc] = field(default_factory=list)
    paused: set[int] = field(default_factory=set)

    def env(self, **extra) -> dict:
        env = clean_env(
            CRONJOBS_TEST_CONFIG=str(self.config),
            PYTHONUNBUFFERED="1",
            CELERY_BROKER_URL=self.kit.broker_url,
            **extra,
        )
        if self.skew:
            # Its monotonic clock is faked too: with FAKETIME_DONT_FAKE_MONOTONIC=1, libfaketime 0.9.10
            # makes Python's time.sleep() fail with EINVAL (absolute clock_nanosleep on CLOCK_MONOTONIC).
            env.update(LD_PRELOAD=LIBFAKETIME, FAKETIME=self.skew)
        return env

    def argv(self, *command: str) -> list[str]:
        """`command` on this host: in a UTS namespace of its own, named after the host."""
        return ["unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', self.name, *command]

    def manage_argv(self, *args: str) -> list[str]:
        return [sys.executable, "manage.py", *args, f"--settings={SUBPROCESS_SETTINGS}"]

    def start(self, *command: str, label: str = "", **env) -> Proc:
        """A long-running process tree on this host, its output collected."""
        proc = Proc(f"{self.name} {label or command[0]}", self.argv(*command), self.env(**env))
        self.procs.append(proc)
        return proc

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """manage.py on this host, to completion."""
        return subprocess.run(
            self.argv(*self.manage_argv(*args)),
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def work(self) -> Proc:
        return self.start(*self.manage_argv("crontab", "work"), label="crontab work")

    def run_scheduled(self, job: str) -> Proc:
        """`crontab run <job> --scheduled` started on this host (not waited for), as cron starts it."""
        return self.start(*self.manage_argv("crontab", "run", job, "--scheduled"), label=f"crontab run {job}")

    def cron(self, job: str) -> Proc:
        """This host's cron: `crontab run <job> --scheduled` at every minute boundary of its own clock,
        each in the background; prints `exit <code> <name>` when one ends."""
        command = " ".join(self.manage_argv("crontab", "run", job, "--scheduled"))
        loop = (
            f'while :; do sleep $((60 - $(date +%s) % 60)); ( {command}; echo "exit $? $(hostname)" ) & sleep 1; done'
        )
        return self.start("sh", "-c", loop, label=f"cron {job}")

    def celery_worker(self, node: str) -> Proc:
        argv = [sys.executable, "-m", "celery", "-A", "alx_backend_graphql_crm", "worker", "-l", "info"]
        argv += ["--pool", "solo", "-n", f"{node}@{self.name}", "--without-gossip", "--without-mingle"]
        argv += ["--without-heartbeat"]
        return self.start(*argv, label="celery worker", DJANGO_SETTINGS_MODULE=SUBPROCESS_SETTINGS)

    def celery_beat(self) -> Proc:
        argv = [sys.executable, "-m", "celery", "-A", "alx_backend_graphql_crm", "beat", "-l", "info"]
        argv += ["--schedule", str(self.folder / "beat-schedule"), "--pidfile", str(self.folder / "beat.pid")]
        return self.start(*argv, label="celery beat", DJANGO_SETTINGS_MODULE=SUBPROCESS_SETTINGS)

    def kill(self) -> set[int]:
        """The machine dies: SIGKILL every process of this host at once (its proxy stays: the network is fine)."""
        roots = [proc.process.pid for proc in self.procs if proc.process.poll() is None]
        killed = freeze_and_kill(roots, f"CRONJOBS_TEST_CONFIG={self.config}")
        for proc in self.procs:
            proc.process.wait(30)
        return killed

    def pause(self) -> None:
        """The machine hangs: SIGSTOP every process of this host until resume()."""
        roots = [proc.process.pid for proc in self.procs if proc.process.poll() is None]
        self.paused = process_tree(roots) | processes_with(f"CRONJOBS_TEST_CONFIG={self.config}")
        _signal_all(self.paused, signal.SIGSTOP)

    def resume(self) -> None:
        _signal_all(self.paused, signal.SIGCONT)

    def output(self) -> str:
        return "\n".join(f"--- {proc.name} (exit {proc.process.poll()})\n{proc.output}" for proc in self.procs)


@dataclass
class Kit:
    """The hosts of one test, their shared settings, and what the database says about them."""

    folder: Path
    target: tuple[str, int, str]  # the database's host, port and name (behind each host's proxy)
    broker_url: str
    django_settings: object  # pytest-django's `settings`: this test process's, which /health/cron/ reads
    user: str = "postgres"
    settings: dict = field(default_factory=dict)  # what each host's JSON file gives its Django settings
    hosts: dict[str, Host] = field(default_factory=dict)

    def configure(self, **values) -> None:
        """Settings for the hosts added after this (CRONJOBS, CRONJOBS_*) and for this test's process."""
        self.settings.update(values)
        for name, value in values.items():
            setattr(self.django_settings, name, value)

    def host(self, name: str, skew: str | None = None) -> Host:
        proxy = DatabaseProxy(self.target[0], self.target[1])
        folder = self.folder / name
        folder.mkdir()
        url = f"postgres://{self.user}@127.0.0.1:{proxy.port}/{self.target[2]}"
        config = write_config(folder, SharedDb(url, None), **self.settings)
        host = Host(name, self, proxy, config, folder, skew)
        self.hosts[name] = host
        return host

    def runs(self, job: str) -> list[JobRun]:
        return list(JobRun.objects.filter(job_name=job).order_by("scheduled_for", "id"))

    def executions(self, job: str) -> list[dict]:
        """What the kit's job noted of its runs of `job` (tests/multihost/jobs.py)."""
        path = self.folder / "executions.jsonl"
        if not path.exists():
            return []
        notes = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [note for note in notes if note["job"] == job]

    def health(self) -> dict:
        """/health/cron/ with every job's details (the metrics token), answered by this test's process."""
        response = Client(HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}").get("/health/cron/?jobs=all")
        return response.json()

    def wait_until(self, what: str, condition, timeout: float = WAIT, every: float = 0.1):
        """Poll `condition` until it returns something true; fail naming `what` and every host's output."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            broken = [line for line in self.lines() if any(sign in line for sign in BROKEN)]
            if broken:
                pytest.fail(f"a host broke while waiting for: {what}: {broken[0]}\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"never happened within {timeout:g}s: {what}\n{self.output()}")
            time.sleep(every)

    def output(self) -> str:
        return "\n".join(host.output() for host in self.hosts.values())

    def lines(self) -> list[str]:
        return [line for host in self.hosts.values() for proc in host.procs for line in list(proc.lines)]

    def stop(self) -> None:
        for host in self.hosts.values():
            host.kill()
            host.proxy.close()
            for proc in host.procs:
                proc._reader.join(5)


@pytest.fixture
def kit(transactional_db, settings, tmp_path_factory):
    """Hosts on this test's PostgreSQL database; `kit.configure(CRONJOBS=...)` before adding hosts."""
    database = connection.settings_dict
    folder = tmp_path_factory.mktemp("multihost")
    folder.chmod(0o777)
    settings.CRONJOBS_METRICS_TOKEN = METRICS_TOKEN
    kit = Kit(
        folder,
        (database["HOST"] or "127.0.0.1", int(database["PORT"] or 5432), database["NAME"]),
        broker_url=settings.CELERY_BROKER_URL,
        django_settings=settings,
        user=database["USER"] or "postgres",
    )
    # `crontab show` on a host reads a crontab holding nothing: never a person's own.
    empty_crontab = folder / "crontab"
    empty_crontab.write_text("#!/bin/sh\nexit 0\n")
    empty_crontab.chmod(0o755)
    kit.configure(**SETTINGS, CRONTAB_EXECUTABLE=str(empty_crontab))
    yield kit
    kit.stop()
    # Killed hosts' sessions end when their proxies close; wait for them, so the flush is not blocked.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _other_sessions():
        time.sleep(0.1)


def _other_sessions() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def hold(name: str, seconds: float, folder: Path | None = None, schedule: str = "* * * * *", **options) -> list:
    """A CRONJOBS entry of the kit's job: it runs `seconds` and notes its executions in `folder`."""
    args = [seconds, str(folder) if folder else None, options.pop("release", None), name]
    return [schedule, f"{JOBS}.hold", args, {}, {"name": name, **options}]
