"""A job that does nothing: bench/engine.py times RQ's own job rate with it.

Workers import it by its dotted name (`bench.noop.noop`); they run from the repo root.
"""

from __future__ import annotations


def noop(ids: list[int]) -> None:
    """Takes a list of ids like the real jobs, and ignores it."""
