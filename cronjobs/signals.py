"""Signals of the runner: the one place every route's runs are announced (for logging, mail, pings).

Receivers get `run` (the JobRun row as recorded). `run_started` also gets `job` (the registry Job).
`run_finished` is sent once per recorded outcome: a finished run, a recorded skip (disabled,
missed, still running), and a run closed as dead by the reaper. A duplicate (another process holds
the slot) records nothing and sends nothing. Signals are sent with `send_robust`: a receiver that
raises is logged and never changes the run or its record.
"""

from django.dispatch import Signal

run_started = Signal()
run_finished = Signal()
