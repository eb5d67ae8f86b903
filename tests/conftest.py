"""The suite's one conftest at the root: the report header, and the hook that turns markers into
availability checks (tests/reachable.py).

A test that needs a service carries its marker (`postgres`, `redis`, `crontab`, `cron_daemon`,
`browser`); before it runs, the marker's check decides: available, run; missing, skip with the
reason, or fail under CRM_E2E=1. `slow` has no check: `make test` deselects it with -m "not slow".
"""

import pytest

from tests import reachable


def pytest_report_header(config):
    from django.conf import settings

    db = settings.DATABASES["default"]
    where = db.get("HOST") or db.get("NAME")
    return f"database: {db['ENGINE'].rsplit('.', 1)[-1]} ({where})" + (", CRM_E2E=1" if reachable.e2e() else "")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    for marker in reachable.CHECKS:
        if item.get_closest_marker(marker) is not None:
            reason = reachable.missing(marker)
            if reason:
                reachable.unavailable(reason)
