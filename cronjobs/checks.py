"""System checks: every bad CRONJOBS entry is reported by `manage.py check` with an id and a hint.

Ids: E001 CRONJOBS is not a list, E002 malformed or ambiguous entry, E003 invalid schedule,
E004 target cannot be imported, E005 target is not callable, E006 duplicate job name,
E007 arguments not JSON serialisable, E008 invalid option, E009 invalid job name,
E010 invalid crontab setting.
"""

from django.core import checks

from cronjobs.registry import Problem, get_registry


def problem_to_error(problem: Problem) -> checks.Error:
    return checks.Error(problem.msg, hint=problem.hint or None, obj="settings.CRONJOBS", id=problem.id)


@checks.register("cronjobs")
def check_cronjobs(app_configs=None, **kwargs):
    from cronjobs.crontab import settings_problems

    problems = get_registry().all_problems() + settings_problems()
    return [problem_to_error(p) for p in problems]
