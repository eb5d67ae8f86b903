"""Trivial job targets for the health tests."""


def noop():
    return "ok"
