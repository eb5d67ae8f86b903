"""`manage.py crontab work`: the foreground scheduler firing every enabled job at its minute.

Each fire is `<python> manage.py crontab run <name> --scheduled-for <minute> --trigger work --verbosity 2`
(verbosity 2: a scheduled run's success and duplicate lines, silent for cron's mail, appear in this log), so a job
that crashes, leaks or times out takes only its own process down, and the slot claim in the runner
(not this loop) is what makes a minute run once: several `work` processes, the system crontab and
Celery beat can fire the same minute and only one run happens.

Due minutes: on every wake-up the loop fires, for each job, the latest scheduled minute after the
last minute it already handled. A wake-up that comes late (sleep overshoot, a suspended machine)
therefore still fires a missed minute once, never a backlog, and only if it is at most `catch_up`
old; the runner may still record it as missed when the job's own `grace` is shorter. Minutes that
began before the scheduler started are not fired (cron does not fire them either).

Configuration changes: the loop watches the files CRONJOBS comes from (the settings module's file and
settings.CRONJOBS_WATCH_FILES). When one changes it stops firing, gives running jobs their grace, and
re-executes itself (same pid, same arguments), so the new CRONJOBS is read afresh; a broken one then
makes it refuse to start (exit 2), loudly, instead of firing jobs that no longer exist.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from django.conf import settings

from cronjobs.registry import Job, schedule_timezone

DEFAULT_GRACE = 30.0  # seconds running jobs get to finish after SIGTERM / Ctrl-C
DEFAULT_CATCH_UP = 300.0  # oldest missed minute a late wake-up still fires, in seconds
POLL = 0.5  # seconds between looks at finished children while waiting for the next minute
KILL_AFTER = 5.0  # seconds between asking a child to stop (SIGINT) and killing it


def minute_floor(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def due_slots(jobs: Iterable[Job], handled: datetime, now: datetime, catch_up: timedelta) -> list[tuple[Job, datetime]]:
    """For each enabled job, its latest scheduled minute in (handled, now], if no older than catch_up.

    One slot per job at most: after a long sleep an every-minute job fires once, not once per
    missed minute.
    """
    due = []
    for job in jobs:
        if not job.enabled:
            continue
        slot = job.latest_run(now)
        if slot > handled and now - slot <= catch_up:
            due.append((job, slot))
    return due


@dataclass
class Child:
    job: Job
    slot: datetime
    process: subprocess.Popen
    started: float
    reader: threading.Thread | None = None
    stop_asked_at: float | None = None


@dataclass
class Scheduler:
    """The loop, with its clock, sleep and process start injectable so tests drive it without waiting."""

    jobs: tuple[Job, ...]
    manage_py: Path
    out: TextIO = sys.stdout
    grace: float = DEFAULT_GRACE
    catch_up: float = DEFAULT_CATCH_UP
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    spawn: Callable[[list[str]], subprocess.Popen] | None = None
    children: list[Child] = field(default_factory=list)
    handled: datetime | None = None
    # A plain flag: the signal handler sets it, and Event.set() from a handler can deadlock.
    stopping: bool = False
    stop_deadline: float | None = None
    # Files CRONJOBS comes from, with their modification times when the loop started.
    watched: dict[Path, int | None] = field(default_factory=dict)
    restart_because: str = ""  # set when a watched file changed: run_forever re-executes the process

    # --- logging ------------------------------------------------------------------------------
    def log(self, message: str) -> None:
        stamp = self.clock().astimezone(schedule_timezone()).strftime("%Y-%m-%d %H:%M:%S %Z")
        # One write per line and a flush, so lines from job reader threads never interleave
        # mid-line and a pipe (make run, tests) sees each line as it happens.
        self.out.write(f"{stamp} {message}\n")
        self.out.flush()

    # --- one step -----------------------------------------------------------------------------
    def tick(self) -> list[tuple[Job, datetime]]:
        """Fire what is due now and collect finished runs. Returns the (job, minute) pairs fired."""
        self.reap()
        now = self.clock()
        current = minute_floor(now)
        if self.handled is None:
            self.handled = current  # the minute we start in has begun already: not ours to fire
            return []
        if current <= self.handled:
            return []  # same minute, or the clock went back: those minutes were handled
        fired = due_slots(self.jobs, self.handled, now, timedelta(seconds=self.catch_up))
        self.handled = current
        for job, slot in fired:
            self.fire(job, slot)
        return fired

    def command(self, job: Job, slot: datetime) -> list[str]:
        return [
            sys.executable,
            str(self.manage_py),
            "crontab",
            "run",
            job.name,
            "--scheduled-for",
            slot.isoformat(),
            "--trigger",
            "work",
            # This log is read, not mailed: keep the successes and duplicates a scheduled run omits.
            "--verbosity",
            "2",
        ]

    def fire(self, job: Job, slot: datetime) -> None:
        label = f"{job.name} [{slot.astimezone(schedule_timezone()):%Y-%m-%d %H:%M}]"
        argv = self.command(job, slot)
        try:
            process = (self.spawn or self._spawn)(argv)
        except OSError as exc:
            self.log(f"fire {label}: could not start the run process: {exc}")
            return
        child = Child(job, slot, process, time.monotonic())
        if process.stdout is not None:
            child.reader = threading.Thread(target=self._relay, args=(job.name, process.stdout), daemon=True)
            child.reader.start()
        self.children.append(child)
        self.log(f"fire {label} pid {process.pid}")

    def _spawn(self, argv: list[str]) -> subprocess.Popen:
        return subprocess.Popen(
            argv,
            cwd=self.manage_py.parent,
            env=os.environ.copy(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            # Own session: a Ctrl-C in the terminal reaches only the scheduler, which then gives
            # running jobs their grace period instead of having them interrupted at once.
            start_new_session=True,
        )

    def _relay(self, name: str, stream) -> None:
        for line in stream:
            self.log(f"  {name}: {line.rstrip()}")

    def reap(self) -> None:
        for child in list(self.children):
            code = child.process.poll()
            if code is None:
                continue
            if child.reader is not None:
                child.reader.join(timeout=5)
            self.children.remove(child)
            seconds = time.monotonic() - child.started
            outcome = exit_meaning(code)
            slot = child.slot.astimezone(schedule_timezone())
            self.log(f"finish {child.job.name} [{slot:%Y-%m-%d %H:%M}] exit {code} ({outcome}) in {seconds:.1f}s")

    # --- the loop -----------------------------------------------------------------------------
    def request_stop(self, signum: int | None = None) -> None:
        if self.stopping:
            # A second Ctrl-C: no more waiting.
            self.stop_deadline = time.monotonic()
            return
        self.stop_deadline = time.monotonic() + self.grace
        self.stopping = True

    def seconds_to_next_minute(self) -> float:
        now = self.clock()
        return (minute_floor(now) + timedelta(minutes=1) - now).total_seconds()

    def serve(self) -> None:
        """Fire jobs until request_stop() or a settings change, then wait for running jobs (up to
        `grace`) and return."""
        zone = schedule_timezone().key
        self.log(f"crontab work: {len(self.jobs)} job(s), times in {zone}, pid {os.getpid()}")
        self.jobs = tuple(job for job in self.jobs if self._announce_job(job))
        self.watched = {path: _mtime(path) for path in self.watched}
        self.tick()
        while not self.stopping:
            # Short sleeps so finishes are logged promptly and a stop is noticed within POLL; the
            # first tick after a minute boundary fires.
            time.sleep(min(POLL, self.seconds_to_next_minute() + 0.01))
            if self._settings_changed():
                break
            if not self.stopping:
                self.tick()
        self.shutdown()

    def _announce_job(self, job: Job) -> bool:
        """Log the job and its next run; False (with the reason logged) for a job that cannot be scheduled."""
        if not job.enabled:
            self.log(f"  {job.name} [{job.schedule}] disabled")
            return True
        try:
            upcoming = job.next_run(self.clock()).astimezone(schedule_timezone())
        except Exception as exc:  # check refuses such schedules; never let one stop the others
            self.log(f"  {job.name} [{job.schedule}] CANNOT BE SCHEDULED ({exc}); it will not fire")
            return False
        self.log(f"  {job.name} [{job.schedule}] next {upcoming:%Y-%m-%d %H:%M}")
        return True

    def _settings_changed(self) -> bool:
        for path, seen in self.watched.items():
            if _mtime(path) != seen:
                self.restart_because = f"{path} changed"
                self.log(f"settings changed ({path}): finishing running jobs, then restarting to re-read CRONJOBS")
                self.request_stop()
                return True
        return False

    def shutdown(self) -> None:
        self.reap()
        if self.children:
            names = ", ".join(c.job.name for c in self.children)
            self.log(
                f"stopping: no more fires; waiting up to {self.grace:g}s "
                f"for {len(self.children)} running job(s): {names}"
            )
        else:
            self.log("stopping: no job running")
        deadline = self.stop_deadline if self.stop_deadline is not None else time.monotonic() + self.grace
        while self.children:
            now = time.monotonic()
            for child in self.children:
                if now >= deadline and child.stop_asked_at is None:
                    # SIGINT: the runner records the run as interrupted before the process exits.
                    self.log(f"grace period over: interrupting {child.job.name} (pid {child.process.pid})")
                    self._signal(child, signal.SIGINT)
                    child.stop_asked_at = now
                elif child.stop_asked_at is not None and now - child.stop_asked_at >= KILL_AFTER:
                    self.log(f"killing {child.job.name} (pid {child.process.pid})")
                    self._signal(child, signal.SIGKILL)
            time.sleep(0.1)
            self.reap()
            if self.stop_deadline is not None and self.stop_deadline < deadline:
                deadline = self.stop_deadline  # a second signal arrived
        self.log("stopped")

    @staticmethod
    def _signal(child: Child, signum: int) -> None:
        try:
            os.killpg(child.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            try:
                child.process.send_signal(signum)
            except ProcessLookupError:
                pass


def exit_meaning(code: int) -> str:
    """What the exit code of a `crontab run` process means (see the command's exit codes)."""
    meanings = {
        0: "ok",
        1: "job failed",
        2: "bad configuration",
        3: "database unreachable, not recorded",
        4: "outcome not recorded",
    }
    if code in meanings:
        return meanings[code]
    if code < 0:
        return f"killed by {_signal_name(-code)}"
    if code > 128:
        return f"interrupted by {_signal_name(code - 128)}"
    return "error"


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def watched_files() -> list[Path]:
    """The files CRONJOBS is read from: the settings module's file and settings.CRONJOBS_WATCH_FILES."""
    files = []
    module = sys.modules.get(getattr(settings, "SETTINGS_MODULE", "") or "")
    if module is not None and getattr(module, "__file__", None):
        files.append(Path(module.__file__))
    files.extend(Path(p) for p in getattr(settings, "CRONJOBS_WATCH_FILES", ()))
    return files


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def work_settings() -> tuple[float, float]:
    """(grace, catch_up) in seconds from settings, validated."""
    values = []
    for name, default in (("CRONJOBS_WORK_GRACE", DEFAULT_GRACE), ("CRONJOBS_WORK_CATCH_UP", DEFAULT_CATCH_UP)):
        value = getattr(settings, name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"settings.{name} must be a number of seconds >= 0, got {value!r}")
        values.append(float(value))
    return values[0], values[1]


def run_forever(scheduler: Scheduler) -> None:
    """Serve with SIGTERM and SIGINT wired to a graceful stop; restores the previous handlers."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def on_signal(signum, frame):
        scheduler.request_stop(signum)

    for sig in previous:
        signal.signal(sig, on_signal)
    try:
        scheduler.serve()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if scheduler.restart_because:
        scheduler.log(f"restarting: {' '.join([sys.executable, *sys.argv])}")
        os.execv(sys.executable, [sys.executable, *sys.argv])  # noqa: S606 - our own command line, again
