"""Helpers for a project's own tests of its CRONJOBS: the runs `crontab plan` would list."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from cronjobs import plan
from cronjobs.registry import Job, JobConfigError, get_registry


def planned_runs(
    start: datetime | str, end: datetime | str, jobs: Iterable[str | Job] | None = None
) -> list[dict[str, Any]]:
    """The runs of settings.CRONJOBS in [start, end): exactly the list `crontab plan --from start --to end
    [--job ...] --format json` prints, same objects, same order.

    start, end: aware datetimes, or naive ones / ISO 8601 strings read as the command reads them
    (naive: settings.TIME_ZONE). jobs: names (or Jobs) to plan; None plans every job.
    Raises cronjobs.plan.PlanError for bad input (as the command exits 2), JobConfigError when CRONJOBS
    has errors (`manage.py check` lists them).

        def test_the_nightly_export_runs_once_on_the_dst_day(settings):
            settings.TIME_ZONE = "Europe/Berlin"
            runs = planned_runs("2026-10-25T00:00", "2026-10-26T00:00", jobs=["nightly_export"])
            assert [run["minute"] for run in runs] == ["2026-10-25T02:30:00+02:00"]
    """
    registry = get_registry()
    problems = registry.all_problems()
    if problems:
        raise JobConfigError("; ".join(problem.msg for problem in problems))
    start_, end_ = plan.checked(plan.moment(start, "start"), plan.moment(end, "end"), "start", "end")
    names = plan.select([registry], None if jobs is None else list(jobs))
    return [run.as_dict() for run in plan.planned(plan.jobs_of(registry, names), start_, end_, limit=plan.MAX_RUNS)]
