"""`manage.py crontab work`: the foreground scheduler firing every enabled job at its minute.

A warm parent. Django is set up and CRONJOBS parsed once; for each fire the scheduler claims the run
(the database refuses a minute another process holds, so several `work` processes, the system
crontab and Celery beat can fire the same minute and it runs once), then forks a runner process from
itself, which supervises the job in a child of its own (cronjobs/supervisor.py) and records the
outcome. A fire costs a fork and a few statements, never a new interpreter. At most
CRONJOBS_MAX_CONCURRENT runs go at once; the others wait in due order, and a run that would start
later than its job's start limit (`grace`, or half its interval) is recorded `missed` by its claim.

Time is the database's (cronjobs/dbclock.py), so a host with a skewed clock fires the right minutes.
A job with `jitter` starts `start_offset` seconds into its minute; its slot is still the minute.

Due minutes: on every wake-up the loop queues, for each job, the latest scheduled minute after the
last minute it handled, if that minute is at most `catch_up` old. A start counts as a wake-up after
`catch_up` seconds, so a restart (a deploy, a crash) still fires each job's latest missed minute once,
never a backlog; every other minute nothing fired is recorded by the gap sweeper (cronjobs/gaps.py),
which this loop runs each minute, with the reaper (expired leases, every lease period) and a
heartbeat row (cronjobs/liveness.py) saying which CRONJOBS it runs.

Configuration changes: the loop watches the files CRONJOBS comes from (the settings module's file and
CRONJOBS_WATCH_FILES). When one changes it checks the new configuration in a fresh process
(`manage.py check --tag cronjobs`); a good one makes it re-execute itself (same pid; runs in progress
go on and record themselves), a broken one is reported (log, heartbeat: /health/cron/, the admin and
`crontab show` show it) while it keeps firing the last good CRONJOBS, and the next change is checked
again. Started on a broken CRONJOBS, it fires nothing, says why, and waits for the fix the same way.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import itertools
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO

from django.conf import settings
from django.db import DatabaseError

from cronjobs import conf, dbclock, gaps, liveness, reaper, runner, supervisor
from cronjobs.describe import outcome_message
from cronjobs.models import JobRun
from cronjobs.registry import Job, schedule_timezone, start_limit

POLL = 0.5  # longest sleep between looks at finished runs and a stop request
RETRY_CLAIM_AFTER = 5.0  # seconds before a fire whose claim failed (database down) is tried again


def minute_floor(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def due_slots(jobs: Iterable[Job], handled: datetime, now: datetime, catch_up: timedelta) -> list[tuple[Job, datetime]]:
    """For each enabled job, its latest scheduled minute in (handled, now], if no older than catch_up
    and not already past its start limit (a minute too late to start is not fired: when the job has
    run before, the gap sweeper records it missed).

    One slot per job at most: after a long sleep an every-minute job fires once, not once per
    missed minute.
    """
    due = []
    for job in jobs:
        if not job.enabled:
            continue
        slot = job.latest_run(now)
        late = now - slot
        if slot > handled and late <= catch_up and late <= start_limit(job, slot):
            due.append((job, slot))
    return due


@dataclass(order=True)
class Fire:
    """A due run waiting for its start time and a free place: start = its minute + the job's start offset."""

    start: datetime
    order: int
    job: Job = field(compare=False)
    slot: datetime = field(compare=False)


@dataclass
class Runner:
    """A runner process the scheduler forked: it supervises one claimed run (and its retries)."""

    pid: int
    job: Job
    slot: datetime
    record_id: int
    started: float
    stop_asked_at: float | None = None
    pidfd: int | None = None  # readable when the runner ends: the loop's wait wakes on it (Linux 5.3+)
    ended: bool = False  # its pidfd said it ended (reap() collects it)


@dataclass
class Scheduler:
    """The loop. Its clock and the way a claimed run is launched are injectable, so tests drive it
    minute by minute without waiting."""

    jobs: tuple[Job, ...]
    out: TextIO = sys.stdout
    grace: float = 30.0
    catch_up: float = 300.0
    max_concurrent: int = 4
    clock: Callable[[], datetime] = dbclock.now
    launch: Callable[[Job, JobRun], int] | None = None  # starts the runner of a claimed run; returns its pid
    collect: Callable[[list[int]], list[tuple[int, int]]] | None = None  # (pid, exit code) of runners that ended
    config_error: str = ""  # why the CRONJOBS in the settings files is refused (the jobs are the last good ones)
    handled: datetime | None = None
    queue: list[Fire] = field(default_factory=list)
    running: dict[int, Runner] = field(default_factory=dict)
    stopping: bool = False  # a plain flag: the signal handler sets it
    stop_deadline: float | None = None
    watched: dict[Path, int | None] = field(default_factory=dict)
    restart_because: str = ""  # a watched file changed and the new configuration is good: re-execute
    beat: liveness.Heartbeat | None = None
    _order: itertools.count = field(default_factory=itertools.count)
    _next_reap: float = 0.0
    _swept: datetime | None = None

    # --- logging ------------------------------------------------------------------------------
    def log(self, message: str) -> None:
        try:
            now = self.clock()
        except DatabaseError:
            now = datetime.now().astimezone()
        stamp = now.astimezone(schedule_timezone()).strftime("%Y-%m-%d %H:%M:%S %Z")
        # One write per line and a flush, so a pipe (make run, tests) sees each line as it happens.
        self.out.write(f"{stamp} {message}\n")
        self.out.flush()

    # --- one step -----------------------------------------------------------------------------
    def tick(self) -> list[tuple[Job, datetime]]:
        """Collect finished runs, queue what became due, start what may start. Returns the (job, minute)
        pairs queued by this step."""
        self.reap()
        now = self.clock()
        current = minute_floor(now)
        queued = []
        if self.handled is None:
            # Starting counts as waking up: each job's latest minute within catch-up is still fired.
            self.handled = current - timedelta(seconds=self.catch_up) - timedelta(microseconds=1)
        if current > self.handled:
            queued = due_slots(self.jobs, self.handled, now, timedelta(seconds=self.catch_up))
            self.handled = current
            for job, slot in queued:
                start = job.start_at(slot)
                heapq.heappush(self.queue, Fire(start, next(self._order), job, slot))
            self.minutely(current)
        self.start_due(now)
        return queued

    def start_due(self, now: datetime) -> None:
        while self.queue and self.queue[0].start <= now and len(self.running) < self.max_concurrent:
            fire = heapq.heappop(self.queue)
            self.fire(fire)

    def fire(self, fire: Fire) -> None:
        """Claim the fire's run; when this process owns it, launch its runner."""
        job, slot = fire.job, fire.slot
        label = self.label(job, slot)
        try:
            record, claimed = runner.claim(job, slot, JobRun.Trigger.WORK)
        except DatabaseError as exc:
            self.log(f"fire {label}: run history unreachable ({runner.one_line(exc)}); trying again")
            retry = Fire(self.clock() + timedelta(seconds=RETRY_CLAIM_AFTER), next(self._order), job, slot)
            heapq.heappush(self.queue, retry)
            return
        except dbclock.ClockSkewError as exc:
            self.log(f"fire {label}: {exc}")
            return
        if not claimed:
            if record.duplicate:
                self.log(f"fire {label}: already claimed by run #{record.pk} ({record.host}); not run again")
            else:
                self.log(f"fire {label}: run #{record.pk} {record.status}: {record.result}")
            return
        try:
            pid = (self.launch or self._fork_runner)(job, record)
        except OSError as exc:
            reason = f"its runner process could not be started: {exc}"
            runner.record_outcome(record, supervisor.Outcome(JobRun.Status.FAILED, reason))
            self.log(f"fire {label}: run #{record.pk} failed: {reason}")
            return
        self.running[pid] = Runner(pid, job, slot, record.pk, time.monotonic(), pidfd=_pidfd(pid))
        self.log(f"fire {label} run #{record.pk} pid {pid}")

    def label(self, job: Job, slot: datetime) -> str:
        return f"{job.name} [{slot.astimezone(schedule_timezone()):%Y-%m-%d %H:%M}]"

    def _fork_runner(self, job: Job, record: JobRun) -> int:
        with contextlib.suppress(Exception):
            self.out.flush()
        pid = os.fork()
        if pid == 0:
            code = 70
            try:
                code = _runner_main(job, record, self.out)
            finally:
                os._exit(code)  # never back into the scheduler's loop, whatever happened
        return pid

    def reap(self) -> None:
        """Log the runner processes that ended."""
        for pid, code in (self.collect or collect_children)(list(self.running)):
            finished = self.running.pop(pid, None)
            if finished is None:
                continue
            if finished.pidfd is not None:
                with contextlib.suppress(OSError):
                    os.close(finished.pidfd)
            seconds = time.monotonic() - finished.started
            label = self.label(finished.job, finished.slot)
            self.log(f"finish {label} run #{finished.record_id} exit {code} ({exit_meaning(code)}) in {seconds:.1f}s")

    # --- once a minute (and every lease period) -----------------------------------------------------
    def minutely(self, minute: datetime) -> None:
        """Heartbeat, gaps: what nothing fired is recorded, once, whichever scheduler sees it first."""
        if self.beat is not None:
            self.guarded("heartbeat", lambda: self.beat.tick(config_error=self.config_error))
        if self._swept != minute:
            self._swept = minute
            recorded = self.guarded("gap sweep", lambda: gaps.sweep(self.jobs, now=self.clock())) or []
            for row in recorded:
                self.log(f"gap: {row.job_name} {row.result}")

    def reap_leases(self) -> None:
        if time.monotonic() < self._next_reap:
            return
        self._next_reap = time.monotonic() + float(conf.get("CRONJOBS_LEASE_SECONDS"))
        for row in self.guarded("reaper", reaper.reap) or []:
            self.log(f"closed run #{row.pk} of {row.job_name}: {row.result}")

    def guarded(self, what: str, step):
        try:
            return step()
        except DatabaseError as exc:
            self.log(f"{what}: run history unreachable ({runner.one_line(exc)}); trying again later")
            return None

    # --- the loop -----------------------------------------------------------------------------
    def request_stop(self, signum: int | None = None) -> None:
        if self.stopping:
            self.stop_deadline = time.monotonic()  # a second Ctrl-C: no more waiting
            return
        self.stop_deadline = time.monotonic() + self.grace
        self.stopping = True

    def idle(self, seconds: float) -> None:
        """Wait up to `seconds`, or until a runner ends: its place goes to the next queued fire at once
        (with a full pool, a fixed sleep left a finished runner's place empty for up to POLL). A runner
        seen ended is not waited on again (were it never collected, the loop would spin)."""
        waiting = {run.pidfd: run for run in self.running.values() if run.pidfd is not None and not run.ended}
        if not waiting:
            time.sleep(seconds)
            return
        ready, _, _ = select.select(list(waiting), [], [], seconds)
        for fd in ready:
            waiting[fd].ended = True

    def seconds_to_next_event(self) -> float:
        now = self.clock()
        until = (minute_floor(now) + timedelta(minutes=1) - now).total_seconds()
        if self.queue and len(self.running) < self.max_concurrent:
            until = min(until, (self.queue[0].start - now).total_seconds())
        return max(0.0, until)

    def serve(self) -> None:
        """Fire jobs until request_stop() or a good configuration change, then wait for running jobs
        (up to `grace`, on a stop) and return."""
        zone = schedule_timezone().key
        self.log(
            f"crontab work: {len(self.jobs)} job(s), times in {zone} (the database's clock), "
            f"at most {self.max_concurrent} at once, pid {os.getpid()}"
        )
        if self.config_error:
            self.log(f"CRONJOBS REFUSED: {self.config_error}")
            self.log("firing nothing until it is fixed (watching the settings files)")
        self.jobs = tuple(job for job in self.jobs if self._announce_job(job))
        self.watched = {path: _mtime(path) for path in self.watched}
        gc.freeze()  # the loaded project stays shared with every forked runner (copy-on-write)
        while not self.stopping:
            self.tick()
            self.reap_leases()
            self.idle(min(POLL, self.seconds_to_next_event() + 0.01))
            if self._configuration_changed():
                break
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
        offset = f":{job.start_offset:02d}" if job.start_offset else ""
        self.log(f"  {job.name} [{job.schedule}] next {upcoming:%Y-%m-%d %H:%M}{offset}")
        return True

    def _configuration_changed(self) -> bool:
        """A watched file changed: check the new CRONJOBS; True when it is good (re-execute)."""
        changed = [path for path, seen in self.watched.items() if _mtime(path) != seen]
        if not changed:
            return False
        self.watched = {path: _mtime(path) for path in self.watched}
        self.log(f"settings changed ({', '.join(map(str, changed))}): checking the new CRONJOBS")
        error = check_configuration()
        if error:
            self.config_error = error
            self.log(f"CRONJOBS REFUSED, still firing the last good configuration: {error}")
            if self.beat is not None:
                self.guarded("heartbeat", lambda: self.beat.tick(config_error=error))
            return False
        self.restart_because = f"{', '.join(map(str, changed))} changed"
        self.log("the new CRONJOBS is good: restarting to fire it (runs in progress go on)")
        return True

    def shutdown(self) -> None:
        self.reap()
        if self.restart_because:
            return  # runs in progress go on; the re-executed scheduler collects them
        if self.running:
            names = ", ".join(r.job.name for r in self.running.values())
            self.log(f"stopping: no more fires; waiting up to {self.grace:g}s for {len(self.running)} run(s): {names}")
        else:
            self.log("stopping: no job running")
        deadline = self.stop_deadline if self.stop_deadline is not None else time.monotonic() + self.grace
        kill_after = float(conf.get("CRONJOBS_STOP_WAIT")) + 5.0
        while self.running:
            now = time.monotonic()
            for run in self.running.values():
                if now >= deadline and run.stop_asked_at is None:
                    # SIGTERM: the runner stops its job and records the run as interrupted, then exits.
                    self.log(f"grace period over: interrupting {run.job.name} (pid {run.pid})")
                    _signal(run.pid, signal.SIGTERM)
                    run.stop_asked_at = now
                elif run.stop_asked_at is not None and now - run.stop_asked_at >= kill_after:
                    self.log(f"killing {run.job.name} (pid {run.pid})")
                    _signal(run.pid, signal.SIGKILL)
            time.sleep(0.1)
            self.reap()
            if self.stop_deadline is not None and self.stop_deadline < deadline:
                deadline = self.stop_deadline  # a second signal arrived
        if self.beat is not None:
            self.guarded("heartbeat", self.beat.stopped)
        self.log("stopped")


# Set in the environment of a re-executed scheduler: runners of the process before it are its children too.
REEXEC_VARIABLE = "CRONJOBS_WORK_REEXECUTED"


def collect_children(pids: list[int]) -> list[tuple[int, int]]:
    """(pid, exit code) of the runner processes in `pids` that ended. After a re-execution, also
    collects the runners the process before it started (they are children of this same pid)."""
    ended = []
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                ended.append((pid, os.waitstatus_to_exitcode(status)))
    if os.environ.get(REEXEC_VARIABLE):
        with contextlib.suppress(ChildProcessError):
            while (found := os.waitpid(-1, os.WNOHANG))[0]:
                ended.append((found[0], os.waitstatus_to_exitcode(found[1])))
    return ended


def _pidfd(pid: int) -> int | None:
    """A file descriptor that becomes readable when `pid` ends; None where the system has none (or the pid
    is a test's stand-in)."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)


def _runner_main(job: Job, record: JobRun, out: TextIO) -> int:
    """A forked runner process: supervise the claimed run (and its retries); the exit code says how it went."""
    for sig in supervisor.STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    os.setsid()  # a Ctrl-C in the terminal reaches the scheduler only, which then stops runs in its own time
    supervisor.clear_stop()
    supervisor.fresh_database_connections()
    # The scheduler's clock reading stays good in its fork (same host clock, same monotonic clock, and it is
    # refreshed by every claim): measuring it again cost each fire a statement before its outcome.
    prefix = f"  {job.name}: "
    try:
        with runner.stop_signals_flagged():
            final = runner.run_claimed(job, record, tee=out, prefix=prefix)
    except runner.Interrupted as exc:
        out.write(f"{prefix}run #{record.pk} {exc}; recorded as interrupted\n")
        return 128 + exc.signum
    except runner.OutcomeNotRecorded as exc:
        out.write(f"{prefix}{exc}\n")
        return 4
    except (runner.HistoryUnavailable, DatabaseError) as exc:
        out.write(f"{prefix}run history unreachable: {exc}\n")
        return 3
    except BaseException as exc:  # noqa: BLE001 - a forked process must reach os._exit
        out.write(f"{prefix}runner error: {runner.one_line(exc)}\n")
        return 70
    finally:
        with contextlib.suppress(Exception):
            out.flush()
    out.write(f"{prefix}{outcome_message(final)}\n")
    out.flush()
    if getattr(final, "late", False):
        return 4
    return 1 if final.status in (JobRun.Status.FAILED, JobRun.Status.TIMED_OUT, JobRun.Status.INTERRUPTED) else 0


def check_configuration(timeout: float = 120) -> str:
    """The CRONJOBS now in the settings files, checked in a fresh process: "" when good, else why not."""
    manage_py = _manage_py()
    argv = [sys.executable, str(manage_py), "check", "--tag", "cronjobs", f"--settings={settings.SETTINGS_MODULE}"]
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=manage_py.parent)  # noqa: S603
    except (OSError, subprocess.SubprocessError) as exc:
        return f"could not check it: {exc}"
    if result.returncode == 0:
        return ""
    lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if "cronjobs.E" in line or "Error" in line or "error" in line]
    return " | ".join(errors[-10:] or lines[-3:]) or f"`manage.py check` exited {result.returncode}"


def _manage_py() -> Path:
    from cronjobs.system_crontab import get_config

    manage_py = get_config().manage_path
    if manage_py is None:
        raise OSError("cannot find manage.py; set CRONTAB_DJANGO_MANAGE_PATH")
    return manage_py


def exit_meaning(code: int) -> str:
    """What the exit code of a `crontab run` process (or a runner of `crontab work`) means."""
    meanings = {
        0: "ok",
        1: "job failed",
        2: "bad configuration",
        3: "database unreachable, not recorded",
        4: "outcome not recorded",
        5: "clock too far from the database's, nothing claimed",
    }
    if code in meanings:
        return meanings[code]
    if code < 0:
        return f"killed by {supervisor.signal_name(-code)}"
    if code > 128:
        return f"interrupted by {supervisor.signal_name(code - 128)}"
    return "error"


def watched_files() -> list[Path]:
    """The files CRONJOBS is read from: the settings module's file and settings.CRONJOBS_WATCH_FILES."""
    files = []
    module = sys.modules.get(getattr(settings, "SETTINGS_MODULE", "") or "")
    if module is not None and getattr(module, "__file__", None):
        files.append(Path(module.__file__))
    files.extend(Path(p) for p in conf.get("CRONJOBS_WATCH_FILES"))
    return files


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def run_forever(scheduler: Scheduler) -> None:
    """Serve with SIGTERM and SIGINT wired to a graceful stop; re-execute on a good configuration change."""
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
        if scheduler.beat is not None:
            scheduler.guarded("heartbeat", scheduler.beat.stopped)
        scheduler.log(f"restarting: {' '.join([sys.executable, *sys.argv])}")
        os.environ[REEXEC_VARIABLE] = "1"
        os.execv(sys.executable, [sys.executable, *sys.argv])  # noqa: S606 - our own command line, again
