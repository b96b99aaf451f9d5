"""What several use cases share that is not a port: how they tell time and count, and name an exception."""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], int]  # epoch nanoseconds
Metric = Callable[[str, float], None]  # add to a count metric of the current invocation
Transient = Callable[[BaseException], bool]  # whether an exception is the infrastructure's (worth retrying)


def no_metric(name: str, value: float) -> None:
    """Metrics off (the operator's command line, tests)."""


def describe(exc: BaseException) -> str:
    """An exception in one line, for a status a user reads: its type and message, never a traceback."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__
