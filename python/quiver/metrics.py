"""A UDF's own counters, reported with the run's metrics (docs/metrics.md).

Inside a UDF::

    import quiver

    @quiver.udf("int64")
    def clean(values):
        ...
        quiver.metrics.counter("rows_skipped").add(skipped)

The worker sends each counter's sum over the execution's batches to the engine
(``Metrics.counters`` in docs/protocol.md); the engine adds up the workers' sums
and shows them in the summary of ``quiver run`` and in ``--metrics FILE``.
Outside a worker the counters simply count in this process.
"""

from __future__ import annotations

import re
import threading

__all__ = ["Counter", "counter", "since", "snapshot"]

_METRIC_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

# Most counter names one execution may report; the engine refuses more.
MAX_COUNTERS = 256

_lock = threading.Lock()
_totals: dict[str, int] = {}


class Counter:
    """A named count that only grows; get one with :func:`counter`."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        """Name the counter; :func:`counter` checks the name."""
        self.name = name

    def add(self, n: int = 1) -> None:
        """Add ``n`` (a whole number, 0 or more) to the counter."""
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"counter {self.name!r}: add() takes a whole number, not {n!r}")
        if n < 0:
            raise ValueError(
                f"counter {self.name!r}: add() takes 0 or more, not {n}; counters only grow"
            )
        with _lock:
            _totals[self.name] = _totals.get(self.name, 0) + n


def is_metric_name(name: str) -> bool:
    """Tell whether ``name`` can name a counter."""
    return isinstance(name, str) and _METRIC_NAME.fullmatch(name) is not None


def counter(name: str) -> Counter:
    """Return the counter ``name``, which must match ``[a-zA-Z_][a-zA-Z0-9_]*``."""
    if not is_metric_name(name):
        raise ValueError(
            f"{name!r} is not a valid metric name: use letters, digits and '_', "
            "not starting with a digit (e.g. 'rows_skipped')"
        )
    with _lock:
        if name not in _totals and len(_totals) >= MAX_COUNTERS:
            raise ValueError(f"counter {name!r}: at most {MAX_COUNTERS} counter names per process")
        _totals.setdefault(name, 0)
    return Counter(name)


def snapshot() -> dict[str, int]:
    """Return every counter's total so far in this process."""
    with _lock:
        return dict(_totals)


def since(before: dict[str, int]) -> dict[str, int]:
    """Return what every counter grew by since ``before`` (a :func:`snapshot`), leaving out 0s."""
    grown = {}
    for name, total in snapshot().items():
        delta = total - before.get(name, 0)
        if delta > 0:
            grown[name] = delta
    return grown
