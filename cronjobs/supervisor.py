"""Where a job runs: a child process of its own, supervised by the process that claimed the run.

The runner (cronjobs/runner.py) claims a run and then calls `execute()`, which forks the job's process
(its own process group; it dies with its supervisor through Linux's parent-death signal) and, until
the child ends:

* reads what the job writes (stdout and stderr are the child's pipe, so print(), logging, C
  extensions and subprocesses are all kept; the last 64 KB go into the record) and echoes it when
  asked (`crontab run` by hand, `crontab work`'s log, a Celery worker's log);
* renews the run's lease every CRONJOBS_LEASE_SECONDS on the database's clock, and stops the job when
  it cannot (another host may then close the run: cronjobs/reaper.py), so a job never outlives its lease;
* enforces the timeout from outside: SIGTERM to the job's process group, then SIGKILL after
  CRONJOBS_STOP_WAIT. The job cannot argue: a job that swallows every exception is killed all the
  same. Stop signals the supervisor receives (cron, systemd, Ctrl-C, `crontab work` stopping) end the
  job the same way and the run is recorded `interrupted`.

The child reports its outcome (status, result, traceback) as JSON lines on a second pipe, so nothing is
shared but what it says. A stopped job is told by SIGTERM, raised in it as Stopped (a
KeyboardInterrupt, so psycopg cancels its statement on the server and `except Exception` does not
catch it); it rolls back what it had open and says what it undid. A job killed outright (SIGKILL) has
its PostgreSQL session terminated by the supervisor, which rolls back its transaction; SQLite never
commits a killed process's open transaction. On PostgreSQL the job's own connection also carries
statement_timeout = its timeout, so no statement of it outlives the timeout on the server.
"""

from __future__ import annotations

import codecs
import contextlib
import copy
import ctypes
import json
import logging
import os
import selectors
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TextIO

from django.db import DatabaseError, connection, connections
from django.db.backends.signals import connection_created

from cronjobs import conf, dbclock
from cronjobs.models import JobRun
from cronjobs.output import OutputBuffer
from cronjobs.registry import Job

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT)
WATCH_INTERVAL = 0.05  # seconds between the watchdog's looks at the deadlines
PR_SET_PDEATHSIG = 1  # prctl(2)
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class Stopped(KeyboardInterrupt):
    """Raised inside the job when its supervisor stops it (timeout, lost lease) or a stop signal arrives."""

    def __init__(self, signum: int):
        self.signum = signum
        self.database_state = _database_state()  # what the job's connection was doing when it arrived
        super().__init__(f"stopped by {signal.Signals(signum).name}")


@dataclass
class Outcome:
    """What happened to one execution of a job, as the supervisor saw it."""

    status: str  # succeeded, failed, timed_out, interrupted
    result: str
    traceback: str = ""
    output: str = ""
    stop_signal: int | None = None  # the stop signal the supervisor itself received, if any
    lease_lost: str = ""  # why the lease was lost (another host closed the run, or renewals failed)


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


# --- stop signals: a flag the watchdog reads (set by runner.stop_signals_flagged's handlers) ------------
_stop_signal: int | None = None


def request_stop(signum: int) -> None:
    """A stop signal arrived: the running job (if any) is stopped and recorded interrupted by it."""
    global _stop_signal
    if _stop_signal is None:
        _stop_signal = signum


def pending_stop() -> int | None:
    return _stop_signal


def clear_stop() -> None:
    global _stop_signal
    _stop_signal = None


# --- the lease ----------------------------------------------------------------------------------------
def renew_lease(record: JobRun) -> bool:
    """Extend the running run's lease by the lease time, on the database's clock. False when the run is
    no longer running (another host closed it); raises DatabaseError when the database cannot say."""
    expires = dbclock.sql_now_plus(timedelta(seconds=conf.lease_ttl()))
    updated = JobRun.objects.filter(pk=record.pk, status=JobRun.Status.RUNNING).update(
        lease_expires_at=expires, renewed_at=dbclock.sql_now(), pid=os.getpid()
    )
    return bool(updated)


# --- the supervisor ---------------------------------------------------------------------------------
@dataclass
class _Child:
    pid: int
    output: int  # read end of the job's stdout + stderr
    results: int  # read end of the job's JSON lines
    pidfd: int | None


@dataclass
class Supervisor:
    """Runs one job in a child process and watches it until it ends. Use `execute()`."""

    job: Job
    record: JobRun | None  # None: a run without history (the database is down), so no lease
    tee: TextIO | None = None  # where to echo the job's output as it comes
    prefix: str = ""  # put before each echoed line
    buffer: OutputBuffer = field(default_factory=OutputBuffer)
    # Shared with the watchdog thread and the signal handler; guarded by _lock.
    stop_reason: str = ""  # "timeout", "lease", "signal"
    stop_signal: int | None = None
    stop_sent_at: float | None = None
    killed: bool = False
    kill_wait: float = 0.0  # seconds from SIGTERM to SIGKILL, when it came to that
    lease_lost: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _done: threading.Event = field(default_factory=threading.Event)  # set when the child has ended
    _pid: int = 0
    _started: float = 0.0
    _renewed: float = 0.0  # time.monotonic() when the last successful renewal began (or the start)
    _next_renewal: float = 0.0
    _messages: list = field(default_factory=list)
    _result_at: float | None = None
    _partial: str = ""

    def execute(self) -> Outcome:
        child = self._start()
        watchdog = threading.Thread(target=self._watch, args=(child,), name="cronjobs-watchdog", daemon=True)
        watchdog.start()
        try:
            status = self._follow(child)
        finally:
            self._done.set()  # the watchdog wakes at once, not at its next look
            watchdog.join()
            for fd in (child.output, child.results, child.pidfd):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
        return self._outcome(status)

    # --- starting the child ---------------------------------------------------------------------
    def _start(self) -> _Child:
        out_r, out_w = os.pipe()
        res_r, res_w = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:  # the job's process: never returns
            os.close(out_r)
            os.close(res_r)
            _child_main(self.job, parent, out_w, res_w)
        os.close(out_w)
        os.close(res_w)
        self._pid = pid
        self._started = self._renewed = time.monotonic()
        if self.record is not None:
            # The lease runs from the claim (a run_started receiver may have taken a while since).
            self._renewed = min(self._started, getattr(self.record, "leased_at", self._started))
            self._next_renewal = self._renewed + float(conf.get("CRONJOBS_LEASE_SECONDS"))
            if self.record.pid != os.getpid():
                # Claimed by another process (crontab work's scheduler): renew at once, so the run names
                # this process, the one a reaper on this host must find alive, before the claimer may die.
                self._next_renewal = self._started
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            pidfd = None
        return _Child(pid, out_r, res_r, pidfd)

    # --- the parent's loop: output, results, lease, exit --------------------------------------------
    def _follow(self, child: _Child) -> int:
        """Read the child's pipes and renew the lease until the child ends; return its wait status."""
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        selector = selectors.DefaultSelector()
        selector.register(child.output, selectors.EVENT_READ, "output")
        selector.register(child.results, selectors.EVENT_READ, "results")
        if child.pidfd is not None:
            selector.register(child.pidfd, selectors.EVENT_READ, "exit")
        results = b""
        status = None
        lease_every = float(conf.get("CRONJOBS_LEASE_SECONDS"))
        while status is None:
            # No record, no lease: wait on the pipes and the exit alone (a look every 0.5 s without a pidfd).
            renewal_in = self._next_renewal - time.monotonic() if self.record is not None else 0.5
            wait = max(0.0, min(0.5, renewal_in))
            for key, _events in selector.select(wait):
                if key.data == "exit":
                    status = self._reap(child.pid, block=True)
                    continue
                chunk = _read(key.fd)
                if not chunk:
                    selector.unregister(key.fd)
                elif key.data == "output":
                    self._take_output(decoder.decode(chunk))
                else:
                    results = self._take_results(results + chunk)
            if status is None and child.pidfd is None:
                status = self._reap(child.pid, block=not selector.get_map())
            if status is None and self.record is not None and time.monotonic() >= self._next_renewal:
                self._next_renewal = time.monotonic() + lease_every
                self._renew()
        # The child is gone; take what it wrote last (a grandchild may hold the pipes and go on writing:
        # no waiting, and no more than a few buffers' worth).
        for fd, kind in ((child.output, "output"), (child.results, "results")):
            with contextlib.suppress(KeyError, ValueError):
                selector.unregister(fd)
            os.set_blocking(fd, False)
            for _chunk in range(64):
                chunk = _read(fd)
                if not chunk:
                    break
                if kind == "output":
                    self._take_output(decoder.decode(chunk))
                else:
                    results = self._take_results(results + chunk)
        self._take_output(decoder.decode(b"", final=True))
        if self._partial:
            self._echo(self._partial)
            self._partial = ""
        selector.close()
        return status

    @staticmethod
    def _reap(pid: int, *, block: bool) -> int | None:
        while True:
            try:
                done, status = os.waitpid(pid, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return 0
            except InterruptedError:
                continue
            return status if done else None

    def _take_output(self, text: str) -> None:
        if not text:
            return
        self.buffer.write(text)
        if self.tee is None:
            return
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._echo(line)

    def _echo(self, line: str) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.tee.write(f"{self.prefix}{line}\n")
            self.tee.flush()

    def _take_results(self, data: bytes) -> bytes:
        *lines, rest = data.split(b"\n")
        for line in lines:
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                self._messages.append(message)
                if "status" in message and self._result_at is None:
                    self._result_at = time.monotonic()
        return rest

    def _renew(self) -> None:
        began = time.monotonic()
        try:
            renewed = renew_lease(self.record)
        except DatabaseError as exc:
            # Try again next period; the watchdog stops the job if no renewal succeeds in time.
            logger.warning("cronjobs: run #%s could not renew its lease: %s", self.record.pk, exc)
            with contextlib.suppress(DatabaseError):
                connection.close()
            return
        if renewed:
            self._renewed = began
            return
        with self._lock:
            if not self.lease_lost:
                self.lease_lost = "another host closed the run (its lease had expired)"
        self._request_stop("lease")

    # --- stopping ---------------------------------------------------------------------------------
    def _watch(self, child: _Child) -> None:
        """The watchdog: all stop decisions (timeout, lease, stop signals), so a database call that hangs
        in the main thread cannot keep a job running past its deadline."""
        timeout = self.job.timeout
        stop_wait = float(conf.get("CRONJOBS_STOP_WAIT"))
        every = float(conf.get("CRONJOBS_LEASE_SECONDS"))
        ttl = conf.lease_ttl()
        # A lease runs from the start of its last renewal (the database reads its now() during it). One
        # missed renewal is borne (a slow statement, a reconnect); then the job is stopped, and it is
        # killed before the lease can expire whatever CRONJOBS_STOP_WAIT says, so it is gone by the time
        # another host may close the run.
        margin = min(1.0, every / 2)
        fence = max(2 * every, ttl - stop_wait - margin)
        while not self._done.is_set():
            now = time.monotonic()
            if self.stop_reason == "" and _stop_signal is not None:
                self.stop_signal = _stop_signal
                self._request_stop("signal")
            elif timeout is not None and now >= self._started + timeout:
                self._request_stop("timeout")
            elif self.record is not None and now >= self._renewed + fence:
                with self._lock:
                    if not self.lease_lost:
                        self.lease_lost = f"no lease renewal succeeded for {now - self._renewed:.0f}s"
                self._request_stop("lease")
            lease_ends = self.record is not None and now >= self._renewed + ttl - margin
            if (
                self.stop_sent_at is not None
                and not self.killed
                and (now >= self.stop_sent_at + stop_wait or lease_ends)
            ):
                self.killed = True
                self.kill_wait = now - self.stop_sent_at
                _kill_group(child.pid, signal.SIGKILL)
            self._done.wait(WATCH_INTERVAL)

    def _request_stop(self, reason: str) -> None:
        with self._lock:
            if self.stop_reason:
                return
            self.stop_reason = reason
            self.stop_sent_at = time.monotonic()
        _kill_group(self._pid, signal.SIGTERM)

    # --- the outcome --------------------------------------------------------------------------------
    def _outcome(self, wait_status: int) -> Outcome:
        result = next((m for m in self._messages if "status" in m), None)
        finished_first = result is not None and (
            self.stop_sent_at is None or (self._result_at is not None and self._result_at <= self.stop_sent_at)
        )
        output = self.buffer.text()
        base = {"output": output, "stop_signal": self.stop_signal, "lease_lost": self.lease_lost}
        if finished_first:
            return Outcome(result["status"], result.get("result", ""), result.get("traceback", ""), **base)
        if not self.stop_reason:  # the job's process died by itself, without a word
            return Outcome(JobRun.Status.FAILED, f"the job's process {_died(wait_status)} without an outcome", **base)
        undo = self._undo_text(result)
        tb = result.get("traceback", "") if result else ""
        if self.stop_reason == "timeout":
            head = f"timed out after {self.job.timeout:g}s"
            return Outcome(JobRun.Status.TIMED_OUT, f"{head}; {undo}", tb, **base)
        if self.stop_reason == "signal":
            head = f"interrupted by {signal_name(self.stop_signal)}"
            return Outcome(JobRun.Status.INTERRUPTED, f"{head}; {undo}", tb, **base)
        head = f"stopped because its lease was lost ({self.lease_lost})"
        return Outcome(JobRun.Status.INTERRUPTED, f"{head}; {undo}", tb, **base)

    def _undo_text(self, result: dict | None) -> str:
        stop_wait = float(conf.get("CRONJOBS_STOP_WAIT"))
        if result is not None and result["status"] == "stopped":
            return result.get("undo", "")
        if result is not None:  # it caught the stop and finished anyway, before the SIGKILL
            late = (self._result_at or time.monotonic()) - (self.stop_sent_at or 0)
            summary = f": {result.get('result', '')}" if result.get("result") else ""
            return f"the job caught the stop signal, ran on {late:.1f}s and then {result['status']}{summary}"
        backend = next((m["backend_pid"] for m in self._messages if "backend_pid" in m), None)
        if self.killed:
            # The wait is shorter than CRONJOBS_STOP_WAIT when the lease was running out.
            waited = f"{stop_wait:g}" if self.kill_wait >= stop_wait else f"{self.kill_wait:.1f}"
            ended = f"it did not stop within {waited}s of SIGTERM and was killed (SIGKILL)"
        else:
            ended = "it ended on SIGTERM before it could report"
        return f"{ended}; {_end_database_session(backend)}"


def _died(wait_status: int) -> str:
    if os.WIFSIGNALED(wait_status):
        signum = os.WTERMSIG(wait_status)
        hint = " (out of memory?)" if signum == signal.SIGKILL else ""
        return f"was killed by {signal_name(signum)}{hint}"
    return f"exited with code {os.waitstatus_to_exitcode(wait_status)}"


def _end_database_session(backend_pid: int | None) -> str:
    """After a SIGKILL: make sure the job's database work is rolled back, and say so."""
    if connection.vendor == "postgresql":
        if backend_pid is None:
            return "it had no database connection open"
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [backend_pid])
        except DatabaseError as exc:
            return f"its database session {backend_pid} could not be ended ({exc}); statement_timeout bounds it"
        return "its database session was ended, which rolled back its open transaction; work it committed before stays"
    return "the database rolls back a killed process's open transaction; work it committed before stays"


def _kill_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signum)


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, 65536)
    except (BlockingIOError, InterruptedError):
        return b""
    except OSError:
        return b""


# --- the child --------------------------------------------------------------------------------------
_inherited: list = []  # the parent's database wrappers, kept alive and never used (never closed) in the child


def _child_main(job: Job, parent: int, out_fd: int, res_fd: int) -> None:
    """The job's process: set up, call the job, report, exit. Never returns."""
    code = 0
    try:
        os.setpgid(0, 0)
        _die_with_parent(parent)
        _reset_signals()
        _redirect_output(out_fd)
        fresh_database_connections()
        report = _reporter(res_fd)
        _report_database_session(job, report)
        report(_call(job))
    except BaseException:  # noqa: BLE001 - the child must always reach os._exit
        code = 70
        with contextlib.suppress(Exception):
            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(Exception):
            connections.close_all()
        os._exit(code)


def _die_with_parent(parent: int) -> None:
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the supervisor died before the line above took effect
        os._exit(1)


def _reset_signals() -> None:
    with contextlib.suppress(ValueError):
        signal.set_wakeup_fd(-1)

    def on_stop(signum, frame):
        raise Stopped(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_stop)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def _redirect_output(out_fd: int) -> None:
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.close(out_fd)
    # New streams on the new descriptors (whatever sys.stdout was: a terminal, a test's capture).
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    # Records reach the run's output once, with their time, level and logger.
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root.addHandler(handler)


def fresh_database_connections() -> None:
    """The parent's connections are the parent's: the child opens its own. The old ones are kept
    referenced and never closed here (closing would end the parent's session on the server)."""
    for alias in connections:
        wrapper = connections[alias]
        if wrapper.connection is None:
            continue
        if wrapper.vendor == "sqlite" and wrapper.is_in_memory_db():
            continue  # an in-memory database (tests) exists only in this copy of the parent's memory
        _inherited.append(wrapper)
        connections[alias] = connections.create_connection(alias)


def _reporter(res_fd: int) -> Callable[[dict], None]:
    def report(message: dict) -> None:
        data = (json.dumps(message) + "\n").encode()
        while data:
            written = os.write(res_fd, data)
            data = data[written:]

    return report


def _report_database_session(job: Job, report: Callable[[dict], None]) -> None:
    """On PostgreSQL, when the job opens its connection: bound its statements by the timeout, and tell
    the supervisor the session's pid (to end it if the job has to be killed)."""

    def on_connect(sender, **kwargs) -> None:
        opened = kwargs["connection"]
        if opened.vendor != "postgresql":
            return
        with opened.cursor() as cursor:
            if job.timeout:
                cursor.execute("SELECT set_config('statement_timeout', %s, false)", [f"{int(job.timeout * 1000)}ms"])
            cursor.execute("SELECT pg_backend_pid()")
            report({"backend_pid": cursor.fetchone()[0]})

    connection_created.connect(on_connect, weak=False, dispatch_uid="cronjobs.supervisor.child")


def _call(job: Job) -> dict:
    """Call the job; its outcome as the message for the supervisor."""
    args, kwargs = copy.deepcopy(list(job.args)), copy.deepcopy(dict(job.kwargs))
    started = time.monotonic()
    try:
        value = job.resolve()(*args, **kwargs)
    except Stopped as exc:
        return {"status": "stopped", "signal": exc.signum, "undo": _abandon_database_work(exc.database_state),
                "traceback": traceback.format_exc()}  # fmt: skip
    except KeyboardInterrupt:
        undo = _abandon_database_work(_database_state())
        return {
            "status": JobRun.Status.INTERRUPTED,
            "result": f"the job raised KeyboardInterrupt; {undo}",
            "traceback": traceback.format_exc(),
        }
    except BaseException as exc:  # noqa: B036 - SystemExit from a job is a failure to record, too
        if job.timeout and time.monotonic() - started >= job.timeout - 0.05 and _statement_timed_out(exc):
            # The server's statement_timeout (the job's timeout, see _report_database_session) ended a
            # statement before the supervisor's stop arrived: the job's timeout, not a failure of it.
            _abandon_database_work(_database_state())
            return {
                "status": JobRun.Status.TIMED_OUT,
                "result": f"timed out after {job.timeout:g}s; the database cancelled its statement at the job's "
                "timeout (statement_timeout), so that statement changed nothing; work it committed before stays",
                "traceback": traceback.format_exc(),
            }
        return {"status": JobRun.Status.FAILED, "result": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()}  # fmt: skip
    if value is None:
        return {"status": JobRun.Status.SUCCEEDED, "result": ""}
    return {"status": JobRun.Status.SUCCEEDED, "result": value if isinstance(value, str) else repr(value)}


def _statement_timed_out(exc: BaseException) -> bool:
    """Whether `exc` is, or was caused by, PostgreSQL cancelling a statement at its statement_timeout."""
    seen: BaseException | None = exc
    for _ in range(10):  # Django's OperationalError wraps psycopg's QueryCanceled (SQLSTATE 57014)
        if seen is None:
            return False
        if getattr(seen, "sqlstate", None) == "57014" and "statement timeout" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _abandon_database_work(state_when_stopped: str) -> str:
    """Cancel the statement the job left running and roll back its transaction; say what that undid.

    psycopg cancels a statement a KeyboardInterrupt breaks into, and Django's atomic blocks roll back
    as the exception leaves them; this catches what is left and closes the connection (closing rolls
    back whatever is still open). `state_when_stopped` is the connection's state when the stop arrived."""
    raw = connection.connection
    if raw is None:
        return "no database connection was open; work it committed before stays"
    now = _transaction_state(raw)
    with contextlib.suppress(Exception):
        if now == "active":
            raw.cancel()
    busy = "active" if "active" in (now, state_when_stopped) else now
    if busy == "idle" and state_when_stopped in ("intrans", "inerror"):
        busy = state_when_stopped
    if not connection.in_atomic_block:  # an inherited in-memory test database stays the test's
        with contextlib.suppress(Exception):
            connection.close()
    if busy == "active":
        return "its database statement was cancelled and its transaction rolled back; work it committed before stays"
    if busy in ("intrans", "inerror"):
        return "its open database transaction was rolled back; work it committed before stays"
    return "no database statement was running; work it committed before stays"


def _database_state() -> str:
    raw = connection.connection
    return _transaction_state(raw) if raw is not None else "idle"


def _transaction_state(raw) -> str:
    """psycopg's view of a connection (idle, active, intrans, inerror); SQLite's in_transaction."""
    info = getattr(raw, "info", None)
    if info is None or not hasattr(info, "transaction_status"):
        return "intrans" if getattr(raw, "in_transaction", False) else "idle"
    return info.transaction_status.name.lower()
