"""How a UDF call is retried and what a failing row becomes: ``quiver.Retry``, ``RetryAfter``.

These are declared with ``@quiver.udf(retries=..., on_error=..., timeout=...,
max_concurrency=...)`` and checked here, at declaration, so that a typo fails before any worker
starts (docs/async-udfs.md).
"""

from __future__ import annotations

import difflib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

ON_ERROR_CHOICES = ("raise", "null")


class RetryAfter(Exception):  # noqa: N818 - named for what the UDF asks for, like HTTP's header
    """Raised by a UDF to ask for its call to be tried again after ``seconds``.

    For example from an HTTP 429 answer's ``Retry-After`` header. It counts as an attempt; when
    the UDF's ``retries=`` allows no more attempts, the row fails with it.
    """

    def __init__(self, seconds: float, message: str = "") -> None:
        """Ask for a retry after ``seconds`` (a finite number, 0 or more)."""
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"RetryAfter takes a number of seconds, not {seconds!r}")
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"RetryAfter takes a wait of 0 seconds or more, not {seconds!r}")
        self.seconds = float(seconds)
        super().__init__(message or f"retry after {self.seconds:g} s")


@dataclass(frozen=True)
class Retry:
    """Try a failing call again, up to ``max_attempts`` calls in all, with exponential back-off.

    The n-th retry waits ``initial * 2**(n-1)`` seconds, at most ``max``, spread by ``jitter``
    (0.1: up to 10% either way) so that many rows failing together do not retry in lockstep.
    Only exceptions of the classes in ``on`` are retried (default: any ``Exception``); a
    :class:`RetryAfter` the UDF raises is always retried, after the wait it names (the server's
    word wins over the back-off, even beyond ``max``).
    """

    max_attempts: int = 3
    initial: float = 0.1
    max: float = 10.0
    jitter: float = 0.1
    on: tuple[type[BaseException], ...] = field(default=(Exception,))

    def __post_init__(self) -> None:
        """Check every field, so that a wrong value fails at declaration."""
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int):
            raise TypeError(f"Retry(max_attempts=) takes an int, not {self.max_attempts!r}")
        if self.max_attempts < 1:
            raise ValueError(f"Retry(max_attempts=) must be 1 or more, not {self.max_attempts}")
        for name in ("initial", "max"):
            _check_seconds(f"Retry({name}=)", getattr(self, name))
        if self.max < self.initial:
            raise ValueError(f"Retry(max={self.max}) is below Retry(initial={self.initial})")
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, (int, float)):
            raise TypeError(f"Retry(jitter=) takes a fraction such as 0.1, not {self.jitter!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"Retry(jitter=) must be between 0 and 1, not {self.jitter}")
        object.__setattr__(self, "on", _exception_classes(self.on))

    def retries(self, exc: BaseException) -> bool:
        """Tell whether ``exc`` is one this policy retries."""
        return isinstance(exc, RetryAfter) or isinstance(exc, self.on)

    def delay(self, retry_number: int, rng: random.Random) -> float:
        """Return the wait in seconds before retry number ``retry_number`` (1 for the first)."""
        base = min(self.max, self.initial * 2 ** (retry_number - 1))
        return max(0.0, base * (1 + self.jitter * (2 * rng.random() - 1)))


def _check_seconds(what: str, value: Any) -> None:
    """Reject a wait that is not a finite number of seconds, 0 or more."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} takes a number of seconds, not {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what} must be a finite number of seconds, 0 or more, not {value!r}")


def _exception_classes(on: Any) -> tuple[type[BaseException], ...]:
    """Return ``on`` (one exception class or several) as a tuple, checking each."""
    classes = (on,) if isinstance(on, type) else tuple(on) if isinstance(on, Sequence) else None
    if not classes or not all(
        isinstance(c, type) and issubclass(c, BaseException) for c in classes
    ):
        raise TypeError(
            f"Retry(on=) takes an exception class or a tuple of them, such as "
            f"(TimeoutError, ConnectionError), not {on!r}"
        )
    return classes


@dataclass(frozen=True)
class CallPolicy:
    """How each call of a UDF runs: concurrency, retries, per-call timeout, failing rows."""

    max_concurrency: int | None = None
    retries: Retry | None = None
    on_error: str = "raise"
    timeout: float | None = None

    def __post_init__(self) -> None:
        """Check every field, so that a wrong value fails at declaration."""
        n = self.max_concurrency
        if n is not None and (isinstance(n, bool) or not isinstance(n, int)):
            raise TypeError(f"max_concurrency= takes an int, not {n!r}")
        if n is not None and n <= 0:
            raise ValueError(
                f"max_concurrency= must be 1 or more (the calls one worker runs at once), not {n}"
            )
        if self.retries is not None and not isinstance(self.retries, Retry):
            raise TypeError(
                f"retries= takes quiver.Retry(max_attempts=..., ...), not {self.retries!r}"
            )
        check_on_error(self.on_error)
        if self.timeout is not None:
            _check_seconds("timeout=", self.timeout)
            if self.timeout == 0:
                raise ValueError("timeout= must be more than 0 seconds (None: no per-call limit)")

    @property
    def is_default(self) -> bool:
        """Tell whether nothing differs from a plain UDF's behaviour."""
        return self == CallPolicy()

    def replace(self, **changes: Any) -> CallPolicy:
        """Return this policy with ``changes`` (checked again)."""
        values = {
            "max_concurrency": self.max_concurrency,
            "retries": self.retries,
            "on_error": self.on_error,
            "timeout": self.timeout,
        }
        values.update(changes)
        return CallPolicy(**values)


def check_on_error(value: Any) -> None:
    """Reject an ``on_error=`` that is not one of the choices, suggesting the nearest."""
    if value in ON_ERROR_CHOICES:
        return
    close = difflib.get_close_matches(str(value), ON_ERROR_CHOICES, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(
        f"on_error= must be one of {', '.join(repr(c) for c in ON_ERROR_CHOICES)}, "
        f"not {value!r}{hint}"
    )
