"""The console's log format: run failures on one line each, their tracebacks left to the run history.

Imported by the LOGGING setting before the apps load, so it imports nothing of Django.
"""

import logging

RUNS_LOGGER = "cronjobs.runs"


class RunLineFormatter(logging.Formatter):
    """A plain Formatter, except that a `cronjobs.runs` record is printed without its traceback text.

    Stderr is what cron mails and what `crontab work` shows: one line per failure there, the
    traceback in the run history. Other handlers (a file, Sentry, AdminEmailHandler) format the
    same record with its traceback.
    """

    def format(self, record: logging.LogRecord) -> str:
        if record.name != RUNS_LOGGER or not record.exc_text or record.exc_info:
            return super().format(record)
        text, record.exc_text = record.exc_text, None
        try:
            return super().format(record)
        finally:
            record.exc_text = text
