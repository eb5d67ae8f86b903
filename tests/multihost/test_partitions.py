"""A silent partition of an open connection fails a statement in seconds (DATABASE_TCP_TIMEOUT): a host in
a network namespace of its own, joined to this one by a veth pair whose far end is then taken down, so
every packet between them is dropped and nobody is told. The proxy of tests/multihost/proxy.py cannot
do this (its kernel still acknowledges what it is sent)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import pytest
from django.db import connection

from tests.cronjobs.conftest import ROOT, SUBPROCESS_SETTINGS, clean_env
from tests.multihost.conftest import DatabaseProxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.multihost]

# Runs in the host's namespace: connect, say so, wait for the word, then try a statement.
STATEMENT_AFTER_THE_WORD = textwrap.dedent(
    """
    import sys, time
    from django.db import connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    print("connected", flush=True)
    sys.stdin.readline()
    began = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        print("answered", flush=True)
    except Exception as exc:
        print(f"failed after {time.monotonic() - began:.1f}s: {type(exc).__name__}: {exc}".splitlines()[0], flush=True)
    """
)


class Link:
    """A network namespace (a host) and the veth pair joining it to this one."""

    def __init__(self):
        self.holder = subprocess.Popen(["unshare", "--net", "sleep", "600"])
        ours = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{self.pid}/ns/net") == ours:  # until `unshare` has made its namespace
            assert time.monotonic() < deadline, "unshare --net never made a namespace"
            time.sleep(0.01)
        subnet = 1 + os.getpid() % 250  # one per test process: xdist workers run side by side
        self.name = f"cjmh{os.getpid() % 100000}"
        self.near, self.far = f"10.231.{subnet}.1", f"10.231.{subnet}.2"
        self.ip("link", "add", f"{self.name}a", "type", "veth", "peer", "name", f"{self.name}b", "netns", str(self.pid))
        self.ip("addr", "add", f"{self.near}/30", "dev", f"{self.name}a")
        self.ip("link", "set", f"{self.name}a", "up")
        for args in (("link", "set", "lo", "up"), ("addr", "add", f"{self.far}/30", "dev", f"{self.name}b")):
            self.ip(*args, inside=True)
        self.ip("link", "set", f"{self.name}b", "up", inside=True)
        # Neighbours known for good: once the link is down, nothing answers "no route to host" either.
        near_mac, far_mac = self.mac(f"{self.name}a"), self.mac(f"{self.name}b", inside=True)
        self.ip("neigh", "replace", self.far, "lladdr", far_mac, "dev", f"{self.name}a", "nud", "permanent")
        self.ip(
            "neigh", "replace", self.near, "lladdr", near_mac, "dev", f"{self.name}b", "nud", "permanent", inside=True
        )

    def mac(self, device: str, inside: bool = False) -> str:
        prefix = ["nsenter", "-t", str(self.pid), "-n"] if inside else []
        shown = subprocess.run(
            [*prefix, "ip", "-o", "link", "show", "dev", device], check=True, capture_output=True, text=True
        )
        return shown.stdout.split("link/ether ", 1)[1].split()[0]

    @property
    def pid(self) -> int:
        return self.holder.pid

    def ip(self, *args: str, inside: bool = False) -> None:
        prefix = ["nsenter", "-t", str(self.pid), "-n"] if inside else []
        subprocess.run([*prefix, "ip", *args], check=True, capture_output=True, text=True)

    def inside(self, argv: list[str]) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-n", *argv]

    def black_hole(self) -> None:
        """Every packet between the namespaces is dropped from now on; no side is told."""
        self.ip("link", "set", f"{self.name}a", "down")

    def close(self) -> None:
        self.holder.kill()
        self.holder.wait(10)
        subprocess.run(["ip", "link", "del", f"{self.name}a"], capture_output=True)


@pytest.fixture
def link():
    joined = Link()
    yield joined
    joined.close()


def test_a_statement_on_a_connection_a_silent_partition_cut_fails_within_the_tcp_timeout(link, tmp_path):
    database = connection.settings_dict
    proxy = DatabaseProxy(database["HOST"] or "127.0.0.1", int(database["PORT"] or 5432), address=link.near)
    try:
        url = f"postgres://{database['USER'] or 'postgres'}@{link.near}:{proxy.port}/postgres"
        config = tmp_path / "config.json"
        config.write_text(f'{{"DATABASE_URL": "{url}", "settings": {{}}}}')
        env = clean_env(CRONJOBS_TEST_CONFIG=str(config), DATABASE_TCP_TIMEOUT="3")
        argv = [
            sys.executable,
            "manage.py",
            "shell",
            "--no-imports",
            "-c",
            STATEMENT_AFTER_THE_WORD,
            f"--settings={SUBPROCESS_SETTINGS}",
        ]
        host = subprocess.Popen(
            link.inside(argv), cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert host.stdout.readline().strip() == "connected"
        link.black_hole()
        host.stdin.write("go\n")
        host.stdin.flush()
        # Without tcp_user_timeout the kernel retransmits for about 15 minutes before giving up; a hang
        # ends at this wait's timeout instead.
        outcome = host.communicate(timeout=60)[0].strip()
        print(f"\nsilent partition, DATABASE_TCP_TIMEOUT=3: {outcome}")
        assert outcome.startswith("failed after ") and "OperationalError" in outcome, outcome
    finally:
        proxy.close()
