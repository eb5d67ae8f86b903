"""A second settings module for `crontab plan --against`: the test settings with another zone and CRONJOBS."""

from tests.settings import *  # noqa: F403

TIME_ZONE = "America/New_York"
CRONJOBS = [
    ("0 22 * * *", "tests.cronjobs.jobs.succeed", {"name": "evening"}),
]
