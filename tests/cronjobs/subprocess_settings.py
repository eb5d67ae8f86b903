"""Settings for processes the cronjobs tests start (by hand or through cron): tests.settings plus a JSON file.

CRONJOBS_TEST_CONFIG names the file: {"DATABASE_URL": ..., "settings": {"CRONJOBS": [...], ...}}. A path in
one variable is what a crontab line can carry (through CRONTAB_COMMAND_PREFIX) into cron's bare environment.
"""

import json
import os

_config = {}
if os.environ.get("CRONJOBS_TEST_CONFIG"):
    with open(os.environ["CRONJOBS_TEST_CONFIG"]) as _file:
        _config = json.load(_file)
    if _config.get("DATABASE_URL"):
        os.environ["DATABASE_URL"] = _config["DATABASE_URL"]

from tests.settings import *  # noqa: E402,F403

globals().update(_config.get("settings", {}))
if os.environ.get("CRONJOBS_TEST_CONFIG"):
    # CRONJOBS comes from that file: `crontab work` restarts when it changes, as when settings.py does.
    CRONJOBS_WATCH_FILES = [os.environ["CRONJOBS_TEST_CONFIG"]]
