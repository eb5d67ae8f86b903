"""Real servers the alert tests talk to: a recording HTTP monitor (answering, hanging, refusing) and an SMTP process."""

import mailbox
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

PORTS = range(18700, 18800)  # this branch's port range on the shared machine


def bound_socket(listen: bool = True) -> socket.socket:
    """A socket bound to a free port of PORTS; without listen(), connecting to it is refused."""
    for port in PORTS:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        if listen:
            sock.listen(16)
        return sock
    pytest.fail(f"no free port in {PORTS}")


@dataclass
class Ping:
    path: str
    body: str
    authorization: str | None = None


@dataclass
class Monitor:
    """An HTTP server recording every POST; `hang` keeps each request open until stop()."""

    hang: bool = False
    status: int = 200
    pings: list[Ping] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)

    def start(self) -> "Monitor":
        monitor = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                monitor.pings.append(Ping(self.path, body, self.headers.get("Authorization")))
                if monitor.hang:
                    monitor.released.wait(120)
                    return
                self.send_response(monitor.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            def log_message(self, *args):
                pass

        sock = bound_socket()
        self.server = ThreadingHTTPServer(sock.getsockname(), Handler, bind_and_activate=False)
        self.server.socket.close()
        self.server.socket = sock
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def paths(self) -> list[str]:
        return [ping.path for ping in self.pings]

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@dataclass
class SmtpServer:
    """`python -m aiosmtpd` in its own process, storing every message it receives in a maildir."""

    folder: Path

    def start(self) -> "SmtpServer":
        self.maildir = self.folder / "maildir"
        sock = bound_socket(listen=False)
        self.port = sock.getsockname()[1]
        sock.close()
        argv = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}"]
        argv += ["-c", "aiosmtpd.handlers.Mailbox", str(self.maildir)]
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 60
        while True:  # until it accepts connections (an event, not a duration)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"aiosmtpd did not start: {self.process.communicate()[0]}")
                time.sleep(0.05)

    def messages(self) -> list:
        if not self.maildir.exists():
            return []
        return sorted(mailbox.Maildir(self.maildir, create=False), key=lambda m: m["Date"] or "")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
