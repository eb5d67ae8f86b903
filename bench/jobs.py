"""Trivial jobs the benchmarks schedule to measure the scheduling engine's own overhead."""


def noop() -> None:
    """Does nothing, so a run's cost is the runner's."""
