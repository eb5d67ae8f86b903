"""Moving this process's clock in a test: time_machine, with the engine told to take it as the database's.

The engine reads the database's clock (cronjobs/dbclock.py), which time_machine cannot move; inside
`travel()`, this process's (frozen or moved) clock stands for it. Times written by SQL (a run's start
and end, leases) stay the database's own.
"""

import contextlib
from datetime import datetime

import time_machine

from cronjobs import dbclock


@contextlib.contextmanager
def travel(moment: datetime, *, tick: bool = False):
    with time_machine.travel(moment, tick=tick) as traveller, dbclock.local_clock():
        yield traveller
