"""`manage.py crontab add|show|remove|run|work`: django-crontab's command, rebuilt on the registry and runner.

Exit codes of `run`: 0 the job succeeded or its skip was recorded (or another process holds the
slot; a missed slot is also 0, with a line on stderr), 1 the job failed or timed out (report on
stderr), 2 unknown job or bad configuration, 3 the run history's database is unreachable (nothing
recorded; nothing ran unless the job has run_without_history), 4 the job ran but its outcome could
not be recorded (or another host had closed the run after its lease expired: the outcome is kept
beside it), 5 this host's clock is further from the database's than CRONJOBS_CLOCK_SKEW_MAX (nothing
claimed), 128 + N stopped by signal N (TERM 143, HUP 129, INT 130, QUIT 131; the run is recorded
`interrupted`). `run <job> --claimed-run ID` supervises a run the admin, GraphQL or the fire endpoint
claimed (exit codes as above; 2 when the run is not waiting for a supervisor). A scheduled run
(--scheduled, --scheduled-for) prints nothing when it succeeds or is skipped, so cron mails nothing
(unless --verbosity 2, which `crontab work` uses).
`add`/`remove`: 0 done, 1 the crontab could not be read or written, or the preflight failed
(nothing changed), 2 bad configuration (nothing changed). `run --preflight` checks that the job
could run (settings, database, job importable) and runs nothing: 0 it could, 2 bad configuration,
3 the database is unreachable or not migrated. `show`: 0, 1 crontab unreadable, 2 configuration
errors (listed). `work` (cronjobs.scheduler): 0 after a SIGTERM / Ctrl-C stop, 2 bad configuration
(refuses to start); it restarts itself when its settings files change. `pause <name> [--reason
TEXT]` / `resume <name>`: 0 done (also when already paused / not paused), 2 unknown job or bad reason.
"""

from __future__ import annotations

import shlex
import sys
import time

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError
from django.db import DatabaseError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django_crontab.management.commands.crontab import Command as DjangoCrontabCommand

from cronjobs import dbclock, pausing, preflight
from cronjobs import system_crontab as backend
from cronjobs.checks import problem_to_error
from cronjobs.dbclock import ClockSkewError
from cronjobs.describe import human_schedule
from cronjobs.models import JobRun
from cronjobs.registry import LEGACY_HASH_RE, Job, JobConfigError, UnknownJob, get_registry, schedule_timezone
from cronjobs.runner import (
    TRIGGERS,
    HistoryUnavailable,
    Interrupted,
    NotAdoptable,
    OutcomeNotRecorded,
    abandon_claimed_run,
    adopt,
    run,
    stop_signals_flagged,
    supervise,
)

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_NO_DATABASE = 3  # the run history's database is unreachable: nothing recorded
EXIT_NOT_RECORDED = 4  # the job ran; its outcome could not be saved (or another host had closed the run)
EXIT_CLOCK = 5  # this host's clock is too far from the database's: nothing claimed
EXIT_SIGNAL_BASE = 128  # + the signal number, the shell's convention (SIGTERM: 143)


class Command(DjangoCrontabCommand):
    help = (
        "add: install CRONJOBS in the crontab; show: list installed jobs with their next and last run; "
        "remove: uninstall them; run <name or legacy hash>: run one job through the runner; "
        "work: fire every job on schedule in the foreground until SIGTERM / Ctrl-C; "
        "pause <name> [--reason TEXT] / resume <name>: stop / restart a job's scheduled runs on every route."
    )
    # `run` validates only the job it runs (one broken entry must not stop every other job), and
    # `add` validates everything itself before touching the crontab.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument(
            "subcommand", choices=["add", "show", "remove", "run", "work", "pause", "resume", "plan", "export"]
        )
        parser.add_argument(
            "jobhash", nargs="?", metavar="job", help="run, pause, resume: a job name or django-crontab hash"
        )
        parser.add_argument("--reason", default="", help="pause: why (shown with every skipped run)")
        parser.add_argument(
            "--scheduled",
            action="store_true",
            help="run: a scheduled run (what installed lines use): claims the latest scheduled minute",
        )
        parser.add_argument("--scheduled-for", help="run: claim this minute (ISO 8601) instead")
        parser.add_argument("--trigger", choices=TRIGGERS, help="run: trigger to record (default crontab or manual)")
        parser.add_argument(
            "--claimed-run",
            type=int,
            metavar="ID",
            help="run: supervise run ID, claimed for this process by the admin, GraphQL or the fire endpoint",
        )
        parser.add_argument("--dry-run", action="store_true", help="add/remove: print the plan, change nothing")
        parser.add_argument("--failing", action="store_true", help="show: only jobs that are late, failing or stuck")
        self._add_preflight_arguments(parser)
        self._add_plan_arguments(parser)
        self._add_export_arguments(parser)
        parser.add_argument(
            "--grace",
            type=float,
            help="work: seconds running jobs get to finish on stop (default CRONJOBS_WORK_GRACE, 30)",
        )
        parser.add_argument(
            "--catch-up",
            type=float,
            help="work, plan --outage: oldest missed minute a late wake-up fires (default CRONJOBS_WORK_CATCH_UP, 300)",
        )

    def handle(self, *args, **options):
        subcommand = options["subcommand"]
        if subcommand in ("run", "pause", "resume"):
            return getattr(self, f"handle_{subcommand}")(options)
        if options["jobhash"]:
            raise CommandError(f"`crontab {subcommand}` takes no job argument", returncode=EXIT_CONFIG)
        return getattr(self, f"handle_{subcommand}")(options)

    # --- add / remove ---------------------------------------------------------------------------
    def _config(self) -> backend.CrontabConfig:
        problems = backend.settings_problems()
        if problems:
            self._fail_config(problems)
        config = backend.get_config()
        if config.manage_path is None:
            raise CommandError("cannot find manage.py; set CRONTAB_DJANGO_MANAGE_PATH", returncode=EXIT_CONFIG)
        return config

    def _fail_config(self, problems, consequence: str = "; the crontab was not changed") -> None:
        for problem in problems:
            error = problem_to_error(problem)
            self.stderr.write(f"{error.id}: {error.msg}" + (f"\n\tHINT: {error.hint}" if error.hint else ""))
        raise CommandError(f"{len(problems)} configuration error(s){consequence}", returncode=EXIT_CONFIG)

    def _apply(self, config: backend.CrontabConfig, plan_for, options, before_write=None) -> None:
        """Plan from the crontab as it is, report (a dry run or --verbosity 2: the exact lines, as a
        diff), run ``before_write``, then write (or delete the crontab) and verify."""
        try:
            current = backend.read_existing_crontab(config)
        except backend.CrontabError as exc:
            raise CommandError(f"{exc}; the crontab was not changed", returncode=EXIT_FAILED) from exc
        plan = plan_for(current)
        for line in plan.report():
            self.stdout.write(f"  {line}")
        if options["dry_run"] or options["verbosity"] >= 2:
            for line in plan.diff():
                self.stdout.write(f"  {line}")
        if before_write is not None:
            before_write()
        if plan.text == current:
            self.stdout.write("crontab already up to date; nothing written")
            return
        if options["dry_run"]:
            self.stdout.write("dry run; nothing written")
            return
        try:
            backend.write_crontab(config, plan.text)
        except backend.CrontabError as exc:
            raise CommandError(str(exc), returncode=EXIT_FAILED) from exc
        done = "written" if plan.text is not None else "deleted (none, as before `crontab add` created it)"
        self.stdout.write(f"crontab {done} and verified ({shlex.join(config.executable)})")

    def handle_add(self, options):
        registry = get_registry()
        problems = registry.all_problems()
        if problems:
            self._fail_config(problems)
        config = self._config()
        self._apply(
            config,
            lambda current: backend.plan_add(current, list(registry.jobs), config),
            options,
            before_write=self._preflight_for_add(registry.jobs, config, options),
        )

    # --- preflight --------------------------------------------------------------------------------
    @staticmethod
    def _add_preflight_arguments(parser) -> None:
        parser.add_argument(
            "--preflight",
            action="store_true",
            help="run: check that the job could run here (settings, database, job importable); run nothing",
        )
        parser.add_argument(
            "--no-preflight",
            action="store_true",
            help="add: skip running one installed line as cron would before writing",
        )

    def _preflight_for_add(self, jobs, config: backend.CrontabConfig, options):
        """What `add` runs before writing: one installed line in check mode, as cron will run it."""
        enabled = [job for job in jobs if job.enabled]
        if options["no_preflight"] or not getattr(settings, "CRONJOBS_PREFLIGHT", True) or not enabled:
            return None

        def check() -> None:
            user = preflight.crontab_user(config)
            self.stdout.write(f"preflight: running {enabled[0].name}'s line as cron would (as {user or 'this user'})")
            failure = preflight.preflight(enabled[0], config)
            if failure is None:
                self.stdout.write("preflight ok")
                return
            self.stderr.write("preflight failed: the installed lines would not run under cron")
            for line in failure.report():
                self.stderr.write(line)
            raise CommandError(
                "the crontab was not changed (fix the above, or --no-preflight to skip this check)",
                returncode=EXIT_FAILED,
            )

        return check

    def handle_preflight(self, job: Job) -> None:
        """`run <job> --preflight`: the settings loaded and the job resolved; now the database. Runs nothing."""
        from django.db import connection

        try:
            JobRun.objects.exists()
        except DatabaseError as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
            raise CommandError(
                f"database unreachable or not migrated ({connection.vendor}): {message}", returncode=EXIT_NO_DATABASE
            ) from exc
        self.stdout.write(
            f"preflight ok: {job.name} can run (python {sys.executable}, settings {settings.SETTINGS_MODULE}, "
            f"database {connection.vendor})"
        )

    def handle_remove(self, options):
        config = self._config()
        self._apply(config, lambda current: backend.plan_remove(current, config), options)

    # --- show -----------------------------------------------------------------------------------
    def handle_show(self, options):
        """Every job (or `--job` / `--failing` ones): what fires it, its state, next and last run; then who
        fires the jobs at all, the engine's problems, and a summary. Costs a few queries, whatever the
        number of jobs."""
        registry = get_registry()
        problems = registry.all_problems() + backend.settings_problems()
        config = backend.get_config()
        unreadable = None
        try:
            current = backend.read_crontab(config)
        except backend.CrontabError as exc:
            unreadable, current = str(exc), ""
        installed, notes = self._installed_lines(current, config, registry)
        jobs = self._jobs_to_show(registry, options)
        states, schedulers, engine_problems, history_error = self._engine_state(jobs)
        if options["failing"]:
            jobs = [job for job in jobs if job.name in states and not states[job.name].healthy]
        tz = schedule_timezone()
        self.stdout.write(f"Jobs in CRONJOBS (times in {tz.key} unless a job has its own zone):")
        for job in jobs:
            self._show_job(
                job, states.get(job.name), installed, config, unreadable, schedulers, problems, history_error
            )
        job_indexes = {job.index for job in registry.jobs}
        for problem in problems:
            if problem.index is None or problem.index not in job_indexes:
                self.stdout.write(f"  ERROR {problem.id}: {problem.msg}")
        for note in notes:
            self.stdout.write(f"  {note}")
        self._show_firing(installed, schedulers, unreadable, registry)
        for problem in engine_problems:
            self.stdout.write(f"{'ERROR' if problem.error else 'WARNING'} {problem.kind}: {problem.text}")
        self.stdout.write(summary_line(states))
        if unreadable:
            raise CommandError(unreadable, returncode=EXIT_FAILED)
        if problems:
            raise CommandError(
                f"{len(problems)} configuration error(s) (listed above; `manage.py check` has hints)",
                returncode=EXIT_CONFIG,
            )

    @staticmethod
    def _installed_lines(current: str, config, registry) -> tuple[dict[str, str], list[str]]:
        """This checkout's installed lines by job name, and notes on stale, legacy and foreign lines."""
        installed: dict[str, str] = {}
        notes, foreign = [], 0
        for line in current.splitlines(keepends=True):
            info = backend.classify(line, config)
            if info.kind == "ours":
                installed[info.name] = line
                if info.name not in registry.names():
                    notes.append(
                        f"stale line  {info.name}: installed but not in CRONJOBS (run `crontab add` to remove it)"
                    )
            elif info.kind == "legacy":
                try:
                    name = registry.get(info.name).name
                    notes.append(
                        f"stale line  {info.name}: plain django-crontab line for job {name} (run `crontab add`)"
                    )
                except UnknownJob:
                    notes.append(
                        f"stale line  {info.name}: plain django-crontab line matching no job (run `crontab add`)"
                    )
            elif info.kind == "foreign":
                foreign += 1
        if foreign:
            notes.append(f"{foreign} line(s) of other projects or checkouts (left alone)")
        return installed, notes

    @staticmethod
    def _jobs_to_show(registry, options) -> list[Job]:
        names = options.get("jobs") or []
        if not names:
            return list(registry.jobs)
        try:
            return [registry.get(name) for name in names]
        except UnknownJob as exc:
            raise CommandError(str(exc), returncode=EXIT_CONFIG) from exc

    @staticmethod
    def _engine_state(jobs: list[Job]):
        """(health by job name, schedulers alive, the engine's problems, why the history is unreadable)."""
        from cronjobs import health, liveness

        try:
            snapshot = health.snapshot(jobs)
            return {item.job.name: item for item in snapshot}, liveness.alive(), health.problems(snapshot), ""
        except DatabaseError as exc:
            return {}, [], [], f"unknown (run history unavailable: {exc.__class__.__name__}; run `manage.py migrate`)"

    def _show_job(self, job, state, installed, config, unreadable, schedulers, problems, history_error) -> None:
        self.stdout.write(f"  {job.name}  [{job.schedule}]  {human_schedule(job)}")
        if job.description:
            self.stdout.write(f"      {job.description}")
        self.stdout.write(f"      installed: {self._install_state(job, installed, config, unreadable)}")
        self.stdout.write(f"      fired by:  {fired_by(job, job.name in installed, schedulers)}")
        for line in operating_lines(job, state.pause if state else None):
            self.stdout.write(f"      {line}")
        own = [p for p in problems if p.index == job.index]
        for problem in own:
            self.stdout.write(f"      ERROR {problem.id}: {problem.msg}")
        if state is not None and state.state not in ("ok", "new"):
            self.stdout.write(f"      state:     {state.problem or state.state}")
        if not own:
            self.stdout.write(f"      next run:  {next_run_text(job, timezone.now(), job.zone)}")
        self.stdout.write(
            f"      last run:  {history_error or last_run_text(state.last_run if state else None, job.zone)}"
        )

    def _show_firing(self, installed: dict, schedulers: list, unreadable, registry) -> None:
        """Who fires the jobs at all: installed lines, live schedulers, or nothing (a warning)."""
        from cronjobs import liveness

        self.stdout.write("Fired by:")
        if installed:
            self.stdout.write(f"  system crontab: {len(installed)} line(s) of this checkout installed")
        for beat in schedulers:
            self.stdout.write(f"  {liveness.describe(beat)}")
        if not installed and not schedulers and not unreadable and any(job.enabled for job in registry.jobs):
            self.stdout.write(
                "  WARNING: nothing fires these jobs: no line of this checkout is installed and no `crontab work` "
                f"or Celery beat has ticked in the last {liveness.ALIVE_WITHIN.total_seconds():g} s "
                "(run `crontab add`, or start `crontab work`)"
            )

    @staticmethod
    def _pauses(names: list[str]) -> dict:
        try:
            return pausing.pauses(names)
        except DatabaseError:
            return {}  # last run says the history is unavailable

    @staticmethod
    def _install_state(job: Job, installed: dict, config, unreadable) -> str:
        if unreadable:
            return "unknown (crontab unreadable)"
        line = installed.get(job.name)
        if not job.enabled:
            return "disabled" + (" but still installed (run `crontab add`)" if line else "")
        if line is None:
            return "no (run `crontab add`)"
        try:
            current = backend.render_line(job, config)
        except backend.CrontabError:
            current = None
        return "yes" if line == current else "yes, but out of date (run `crontab add`)"

    # --- pause / resume ---------------------------------------------------------------------------
    def handle_pause(self, options):
        name = self._job_name_argument(options, "pause")
        try:
            pause, created = pausing.pause_job(name, by=pausing.command_line_user(), reason=options["reason"])
        except UnknownJob as exc:
            raise CommandError(str(exc), returncode=EXIT_CONFIG) from exc
        except ValueError as exc:
            raise CommandError(f"--reason: {exc}", returncode=EXIT_CONFIG) from exc
        state = "paused" if created else "already paused"
        self.stdout.write(f"{pause.job_name}: {state} ({pause.summary}); scheduled runs are skipped until resumed")

    def handle_resume(self, options):
        name = self._job_name_argument(options, "resume")
        try:
            pause = pausing.resume_job(name)
        except UnknownJob as exc:
            raise CommandError(str(exc), returncode=EXIT_CONFIG) from exc
        if pause is None:
            self.stdout.write(f"{name}: not paused; nothing to do")
        else:
            self.stdout.write(f"{pause.job_name}: resumed (was {pause.summary}); it runs at its next scheduled minute")

    @staticmethod
    def _job_name_argument(options, subcommand: str) -> str:
        if not options["jobhash"]:
            raise CommandError(f"`crontab {subcommand}` needs a job name", returncode=EXIT_CONFIG)
        return options["jobhash"]

    # --- work --------------------------------------------------------------------------------------
    def handle_work(self, options):
        """`work`: the foreground scheduler (cronjobs/scheduler.py). A broken CRONJOBS does not stop it:
        it fires nothing, says why, and picks up the fix; only bad command-line values exit 2."""

        from cronjobs import conf, liveness
        from cronjobs.models import SchedulerBeat
        from cronjobs.scheduler import Scheduler, run_forever, watched_files

        try:
            grace = conf.get("CRONJOBS_WORK_GRACE") if options.get("grace") is None else options["grace"]
            catch_up = conf.get("CRONJOBS_WORK_CATCH_UP") if options.get("catch_up") is None else options["catch_up"]
            max_concurrent = conf.get("CRONJOBS_MAX_CONCURRENT")
            watched = watched_files()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc), returncode=EXIT_CONFIG) from exc
        for flag, value in (("grace", grace), ("catch-up", catch_up)):
            if not value >= 0:
                raise CommandError(f"--{flag} must be >= 0 seconds, got {value}", returncode=EXIT_CONFIG)
        registry = get_registry()
        problems = registry.all_problems() + conf.problems()
        config_error = " | ".join(f"{problem_to_error(p).id}: {p.msg}" for p in problems)
        jobs = () if problems else registry.jobs
        beat = liveness.Heartbeat(SchedulerBeat.Route.WORK, len(jobs))
        scheduler = Scheduler(
            jobs=jobs,
            out=sys.stdout,
            grace=float(grace),
            catch_up=float(catch_up),
            max_concurrent=max_concurrent,
            config_error=config_error,
            watched=dict.fromkeys(watched),
            beat=beat,
        )
        run_forever(scheduler)

    # --- plan -----------------------------------------------------------------------------------
    @staticmethod
    def _add_plan_arguments(parser) -> None:
        parser.add_argument(
            "--from", dest="plan_from", metavar="T", help="plan: from this time (ISO 8601; default now)"
        )
        parser.add_argument("--to", dest="plan_to", metavar="T", help="plan: up to this time (default from + 24 h)")
        parser.add_argument(
            "--job", dest="jobs", nargs="+", action="extend", metavar="NAME", help="plan, show: only these jobs"
        )
        parser.add_argument(
            "--outage",
            metavar="FROM..TO",
            help="plan: what a scheduler down in [FROM, TO) fires at TO, records missed and never runs",
        )
        parser.add_argument(
            "--against",
            metavar="OTHER",
            help="plan: runs added, removed and moved from OTHER's CRONJOBS (settings module or .py file) to these",
        )

    def handle_plan(self, options):
        import json

        from cronjobs import conf, plan

        if options["format"] not in (None, "text", "json"):
            raise CommandError(
                f"plan: --format must be text or json, got {options['format']!r}", returncode=EXIT_CONFIG
            )
        registry = get_registry()
        problems = registry.all_problems()
        if problems:
            self._fail_config(problems, " in CRONJOBS; nothing planned")
        catch_up = options.get("catch_up")
        if catch_up is not None and not catch_up >= 0:
            raise CommandError(f"--catch-up must be >= 0 seconds, got {catch_up}", returncode=EXIT_CONFIG)
        if catch_up is None and options["outage"] is not None:
            try:
                catch_up = conf.get("CRONJOBS_WORK_CATCH_UP")
            except ImproperlyConfigured as exc:
                raise CommandError(str(exc), returncode=EXIT_CONFIG) from exc
        request = plan.Request(
            now=timezone.now(),
            start=options["plan_from"],
            end=options["plan_to"],
            names=options["jobs"],
            fmt=options["format"] or "text",
            outage=options["outage"],
            against=options["against"],
            catch_up=plan.DEFAULT_CATCH_UP if catch_up is None else catch_up,
        )
        try:
            data, lines = plan.report(registry, request)
        except plan.PlanError as exc:
            raise CommandError(str(exc), returncode=EXIT_CONFIG) from None
        self.stdout.write(json.dumps(data, indent=2) if request.fmt == "json" else "\n".join(lines))

    # --- export -----------------------------------------------------------------------------------
    @staticmethod
    def _add_export_arguments(parser) -> None:
        # --format has no argparse choices: each subcommand checks its own values.
        parser.add_argument(
            "--format", help="plan: text (default) or json; export: k8s, cloud-scheduler or github-actions"
        )
        parser.add_argument(
            "--check",
            metavar="FILE",
            help="export: compare FILE (a previous export) with CRONJOBS and list added / changed / removed jobs; "
            "exit 0 when they match, 1 when they differ (writes nothing)",
        )
        parser.add_argument("--output", metavar="FILE", help="export: write here (whole or not at all), not stdout")
        parser.add_argument(
            "--base-url", help="export: where the scheduler reaches the site (default CRONJOBS_BASE_URL)"
        )
        parser.add_argument(
            "--image", help="export k8s: the project's image (default CRONJOBS_EXPORT_IMAGE, crm:latest)"
        )
        parser.add_argument("--namespace", help="export k8s: namespace (default CRONJOBS_EXPORT_NAMESPACE, default)")
        parser.add_argument(
            "--env-secret",
            help="export k8s: the Secret holding the .env variables, '' for none "
            "(default CRONJOBS_EXPORT_ENV_SECRET, crm-env)",
        )
        parser.add_argument("--project", help="export cloud-scheduler: Google Cloud project id")
        parser.add_argument("--location", help="export cloud-scheduler: Cloud Scheduler region, e.g. europe-west1")

    def handle_export(self, options):
        """Exit 0 written (or --check: the file matches), 1 --check: the file differs, 2 nothing written:
        bad option, a job that cannot be exported, CRONJOBS errors, an unreadable --check file."""
        from cronjobs import export

        if options["check"] and options["output"]:
            raise CommandError("--check compares and writes nothing; leave out --output", returncode=EXIT_CONFIG)
        try:
            target, notes = export.target_from(options)
            registry = get_registry()
            if registry.all_problems():
                self._fail_config(registry.all_problems(), "; nothing exported")
            result = export.export(registry.jobs, target)
            comparison = export.check(options["check"], result, target.format) if options["check"] else None
            if options["output"]:
                export.write(options["output"], result.text)
        except export.ExportError as exc:
            for line in exc.lines[:-1]:
                self.stderr.write(line)
            quiet = options["check"] or "nothing" in exc.lines[-1]
            raise CommandError(exc.lines[-1] + ("" if quiet else "; nothing written"), returncode=EXIT_CONFIG) from None
        for note in notes + result.notes:
            self.stderr.write(note)
        if comparison is not None:
            self._report_check(options["check"], comparison)
        elif options["output"]:
            self.stdout.write(f"wrote {len(result.jobs)} job(s) to {options['output']} ({target.format})")
        else:
            self.stdout.write(result.text, ending="")

    def _report_check(self, path: str, comparison) -> None:
        for line in comparison.report():
            self.stdout.write(f"  {line}")
        if not comparison.equal:
            raise CommandError(f"{path} differs from CRONJOBS: {comparison.summary()}", returncode=EXIT_FAILED)
        self.stdout.write(f"{path} matches CRONJOBS")

    # --- run ------------------------------------------------------------------------------------
    def handle_run(self, options):
        if options["claimed_run"] is not None:
            return self.handle_claimed_run(options)
        job = self._job_to_run(options["jobhash"])
        if options.get("preflight"):
            return self.handle_preflight(job)
        # A legacy hash only ever comes from a line plain django-crontab installed: a scheduled run.
        scheduled = (
            options["scheduled"] or bool(options["scheduled_for"]) or bool(LEGACY_HASH_RE.match(options["jobhash"]))
        )
        scheduled_for = None
        if options["scheduled_for"]:
            scheduled_for = parse_datetime(options["scheduled_for"])
            if scheduled_for is None:
                raise CommandError(
                    f"--scheduled-for {options['scheduled_for']!r} is not an ISO datetime", returncode=EXIT_CONFIG
                )
        elif scheduled:
            try:
                now = dbclock.now()
            except DatabaseError:
                # The claim will find the database down too (exit 3); a job with run_without_history
                # still runs, for the minute this host's clock says.
                now = timezone.now()
            scheduled_for = backend.scheduled_slot(job, now)
            if scheduled_for is None:
                return  # a zoned job's line fires at every minute that can be due; this one is not
            wait_for_start_offset(job, scheduled_for, now)
        trigger = options["trigger"] or ("crontab" if scheduled else "manual")
        # cron mails whatever a line prints: a crontab-fired run only records its output.
        tee = None if trigger == "crontab" else self.stdout
        record = self._supervised(job, lambda: run(job, scheduled_for=scheduled_for, trigger=trigger, tee=tee))
        # Quiet: cron mails whatever a line prints. --verbosity 2 (crontab work's log) reports successes
        # too; a scheduled failure stays one line whatever the verbosity (its traceback is in the history).
        self._report_run(job, record, quiet=scheduled and options["verbosity"] < 2, short_failure=scheduled)

    def handle_claimed_run(self, options):
        """`run <job> --claimed-run ID`: supervise a run the admin, GraphQL or the fire endpoint claimed."""
        try:
            job, record = adopt(options["claimed_run"])
        except (UnknownJob, JobConfigError) as exc:
            # The run waits for a supervisor that cannot take it (its job is not in these settings):
            # close it, saying why, rather than leave it `running` until its start-up lease expires.
            abandon_claimed_run(options["claimed_run"], f"its supervising process could not take the run: {exc}")
            raise CommandError(str(exc), returncode=EXIT_CONFIG) from exc
        except NotAdoptable as exc:
            raise CommandError(str(exc), returncode=EXIT_CONFIG) from exc
        except DatabaseError as exc:
            raise CommandError(f"run history unreachable: {exc}", returncode=EXIT_NO_DATABASE) from exc
        if options["jobhash"] and options["jobhash"] != job.name:
            raise CommandError(
                f"run #{record.pk} is a run of {job.name}, not {options['jobhash']}", returncode=EXIT_CONFIG
            )
        record = self._supervised(job, lambda: supervise(job, record))
        self._report_run(job, record, quiet=True, short_failure=True)

    def _supervised(self, job: Job, go) -> JobRun:
        """Call `go` (which runs the job under the runner) with stop signals flagged; exit codes for its errors."""
        try:
            with stop_signals_flagged():
                record = go()
        except HistoryUnavailable as exc:
            raise CommandError(history_unavailable_text(exc), returncode=EXIT_NO_DATABASE) from None
        except ClockSkewError as exc:
            raise CommandError(f"{job.name}: {exc}; nothing claimed", returncode=EXIT_CLOCK) from None
        except OutcomeNotRecorded as exc:
            raise CommandError(
                f"{exc} (after retries); the run stays `running` until its lease expires and it is closed",
                returncode=EXIT_NOT_RECORDED,
            ) from None
        except Interrupted as exc:
            raise CommandError(interrupted_text(job, exc), returncode=EXIT_SIGNAL_BASE + exc.signum) from None
        if getattr(record, "late", False):
            raise CommandError(
                f"{job.name} run #{record.pk} {record.late_status}, but another process had already closed the run "
                f"as {record.status} (its lease had expired); the real outcome is kept beside it",
                returncode=EXIT_NOT_RECORDED,
            )
        return record

    @staticmethod
    def _job_to_run(name: str | None) -> Job:
        if not name:
            raise CommandError("`crontab run` needs a job name (or legacy hash)", returncode=EXIT_CONFIG)
        try:
            job = get_registry().get(name)
            if job.problems:
                raise JobConfigError("; ".join(p.msg for p in job.problems))
            job.resolve()
        except UnknownJob as exc:
            raise CommandError(str(exc), returncode=EXIT_CONFIG) from exc
        except JobConfigError as exc:
            raise CommandError(f"job {name!r} cannot run: {exc}", returncode=EXIT_CONFIG) from exc
        return job

    def _report_run(self, job: Job, record: JobRun, *, quiet: bool, short_failure: bool) -> None:
        """Talk about the outcome: a run typed by hand always, a scheduled one only when it went wrong
        (cron mails whatever a line prints), and then in one line."""
        label = f"{job.name} run #{record.pk}"
        if record.duplicate:
            if not quiet:
                self.stdout.write(
                    f"{job.name}: slot {record.scheduled_for:%Y-%m-%d %H:%M} already claimed by run #{record.pk} "
                    f"({record.host} pid {record.pid}, {record.status}); not run again"
                )
        elif record.status == JobRun.Status.SUCCEEDED:
            if not quiet:
                self.stdout.write(
                    f"{label} succeeded in {record.duration}" + (f": {record.result}" if record.result else "")
                )
        elif record.status == JobRun.Status.SKIPPED:
            if not quiet:
                self.stdout.write(f"{label} skipped: {record.result}")
        elif record.status == JobRun.Status.MISSED:
            self.stderr.write(f"{label} {record.result}")
        else:
            if record.traceback and not short_failure:
                self.stderr.write(record.traceback.rstrip("\n"))
            hint = (
                "; traceback in the run history (`crontab show`, admin)" if short_failure and record.traceback else ""
            )
            raise CommandError(f"{label} {record.status}: {record.result}{hint}", returncode=EXIT_FAILED)


def history_unavailable_text(exc: HistoryUnavailable) -> str:
    text = f"{exc.job.name}: {exc}; nothing recorded"
    if exc.outcome is None:
        return f"{text}, the job did not run"
    status, result = exc.outcome
    first_line = result.strip().splitlines()[0] if result.strip() else ""
    ran = f"{text}; it ran without the history (run_without_history): {status}"
    return f"{ran}: {first_line}" if first_line else ran


def interrupted_text(job: Job, exc: Interrupted) -> str:
    if exc.record is None:
        return f"{job.name}: {exc} outside the job; any outcome already recorded stands"
    return f"{job.name} run #{exc.record.pk} {exc}; recorded as {exc.record.status}"


def next_run_text(job: Job, now, tz) -> str:
    try:
        upcoming = job.next_run(now).astimezone(tz)
        if job.start_offset:  # jitter: the exact second it starts, the same after every restart
            started = job.start_at(upcoming).astimezone(tz)
            return f"{started:%Y-%m-%d %H:%M:%S %Z} (jitter: {job.start_offset} s into its minute)"
        return f"{upcoming:%Y-%m-%d %H:%M %Z}"
    except Exception as exc:  # a schedule croniter cannot place: say so, list the others
        return f"cannot be scheduled: {exc}"


def wait_for_start_offset(job: Job, slot, now) -> None:
    """A job with `jitter` starts its offset into its minute on the cron route too (cron starts lines
    at the minute); the minute it claims stays the minute."""
    if job.start_offset:
        wait = (job.start_at(slot) - now).total_seconds()
        if wait > 0:
            time.sleep(min(wait, job.start_offset))


def last_run_text(record: JobRun | None, tz) -> str:
    """show's `last run:` line: status, when (in the job's zone), trigger, attempt, the result's first line."""
    if record is None:
        return "never"
    when = record.started_at.astimezone(tz)
    attempt = f", attempt {record.attempt}" if record.attempt > 1 else ""
    gap = f", {record.gap_count} minute(s) to {record.gap_last.astimezone(tz):%H:%M}" if record.gap_count else ""
    return f"{record.status} at {when:%Y-%m-%d %H:%M:%S %Z} ({record.trigger}{attempt}{gap})" + (
        f": {record.result.splitlines()[0][:120]}" if record.result else ""
    )


def fired_by(job: Job, line_installed: bool, schedulers: list) -> str:
    """What fires a job: its installed crontab line and the schedulers alive; "nothing" is a warning."""
    if not job.enabled:
        return "nothing: the job is disabled"
    firing = ["its crontab line"] if line_installed else []
    firing += [f"{beat.get_route_display()} on {beat.host}" for beat in schedulers]
    if not firing:
        return "NOTHING (WARNING): no crontab line installed, no `crontab work` or Celery beat alive"
    return ", ".join(firing)


def summary_line(states: dict) -> str:
    """`N job(s): a ok, b late, ...` over the jobs looked at (all, or those `--job` names)."""
    from collections import Counter

    counts = Counter(item.state for item in states.values())
    parts = [f"{count} {state}" for state, count in sorted(counts.items())]
    return f"{len(states)} job(s): {', '.join(parts) or 'state unknown'}"


def operating_lines(job: Job, pause) -> list[str]:
    """show's lines for the options set at run time or per job: pause, time zone, retries."""
    lines = []
    if pause is not None:
        lines.append(f"PAUSED:    {pause.summary} (`crontab resume {job.name}`)")
    if job.timezone:
        lines.append(f"time zone: {job.timezone}")
    if job.retries:
        timeouts = ", timeouts too" if job.retry_on_timeout else ""
        lines.append(
            f"retries:   {job.retries} (backoff {job.retry_backoff:g}s doubling, max {job.retry_backoff_max:g}s"
            f"{timeouts})"
        )
    return lines
