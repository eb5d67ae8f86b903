"""The baselines of bench/fleet.py's command figures, as processes with bench/fleet_settings.py.

python -m bench.fleet_baseline show [--failing]   django.setup(), one query of each job's last run, a line a job
python -m bench.fleet_baseline forks N OUT.json   a warm parent forking a child per fire that runs the no-op
"""

import json
import os
import resource
import sys
import time

import django

FAILED = ("failed", "timed_out", "interrupted", "missed")


def show(failing: bool) -> None:
    from django.conf import settings
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT job_name, status FROM cronjobs_jobrun WHERE id IN "
            "(SELECT MAX(id) FROM cronjobs_jobrun WHERE status <> 'skipped' GROUP BY job_name)"
        )
        last = dict(cursor.fetchall())
    lines, bad = [], 0
    for entry in settings.CRONJOBS:
        name = entry[-1]["name"] if isinstance(entry[-1], dict) else entry[1].rsplit(".", 1)[-1]
        status = last.get(name, "never ran")
        bad += status in FAILED
        if not failing or status in FAILED:
            lines.append(f"  {name}  [{entry[0]}]  last run: {status}\n")
    sys.stdout.write("".join(lines) + f"{len(settings.CRONJOBS)} jobs, {bad} failing\n")


def forks(n: int, out: str) -> None:
    """n fires as forks of this warm process, at most CRONJOBS_MAX_CONCURRENT at once; CPU per fork."""
    from cronjobs import conf
    from cronjobs.registry import get_registry

    at_once = conf.get("CRONJOBS_MAX_CONCURRENT")
    target = get_registry().get("job_0").resolve()

    def cpu() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    before, started, running = cpu(), time.perf_counter(), 0
    for _ in range(n):
        if running >= at_once:
            os.wait()
            running -= 1
        if os.fork() == 0:
            target()
            os._exit(0)
        running += 1
    while running:
        os.wait()
        running -= 1
    spent = cpu() - before
    with open(out, "w") as handle:
        json.dump({"forks": n, "cpu": spent, "cpu_per_fork": spent / n, "wall": time.perf_counter() - started}, handle)


def main(argv: list[str]) -> int:
    django.setup()
    if argv[:1] == ["show"]:
        show("--failing" in argv)
    elif argv[:1] == ["forks"]:
        forks(int(argv[1]), argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
