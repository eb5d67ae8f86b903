"""System checks: every bad CRONJOBS entry is reported by `manage.py check` with an id and a hint.

Ids are the named constants E001-E011 in cronjobs/registry.py, each with its meaning beside it.
"""

from django.core import checks

from cronjobs.registry import Problem, get_registry


def problem_to_error(problem: Problem) -> checks.Error:
    return checks.Error(problem.msg, hint=problem.hint or None, obj="settings.CRONJOBS", id=problem.id)


@checks.register("cronjobs")
def check_cronjobs(app_configs=None, **kwargs):
    from cronjobs import alerts
    from cronjobs.system_crontab import settings_problems

    problems = get_registry().all_problems() + settings_problems() + alerts.settings_problems()
    return [problem_to_error(p) for p in problems]
