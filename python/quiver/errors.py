"""The exceptions of :class:`quiver.Session`: one class per kind of failure.

Every failure of the engine carries a kind (``quiver::UdfErrorDetail`` on the C++ side); the
binding turns it into one of these classes, so that callers catch what they can handle::

    try:
        out = session.map(table, udfs=[quiver.call(clean, "name")]).read_all()
    except quiver.UdfError as error:          # the UDF raised: do not retry
        print(error.udf_name, error.error_class)
        print(error.traceback)
    except quiver.WorkerCrashed as error:     # the worker died: retrying may help
        print(error.signal, error.log_tail)
"""

from __future__ import annotations

from typing import Any


class QuiverError(Exception):
    """Base class of every error a :class:`quiver.Session` raises.

    ``kind`` is the engine's name for what went wrong ("user_error", "worker_lost", ...;
    "" when the engine attached no kind), ``retryable`` whether running the same data on a
    new worker may succeed, ``worker`` the worker it happened on ("worker 2 (pid 1234)").
    """

    def __init__(self, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        detail = detail or {}
        self.message = message
        self.kind: str = detail.get("kind", "")
        self.retryable: bool = bool(detail.get("retryable", False))
        self.worker: str = detail.get("worker", "")
        self.worker_pid: int = int(detail.get("worker_pid", 0))
        self.log_tail: str = detail.get("log_tail", "")

    def __reduce__(self) -> tuple[Any, ...]:
        # Ray and multiprocessing ship exceptions between processes by pickling: rebuild
        # with every field (those of subclasses too) without calling __init__ again.
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


class UdfError(QuiverError):
    """A UDF raised an exception in its worker (the worker lives on).

    ``udf_name`` is the UDF, ``error_class`` the exception's class (e.g. ``"ValueError"``)
    and ``traceback`` the user's traceback as text.
    """

    def __init__(self, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message, detail)
        detail = detail or {}
        self.udf_name: str = detail.get("udf_name", "")
        self.error_class: str = detail.get("error_class", "")
        self.traceback: str = detail.get("traceback", "")


class WorkerError(UdfError):
    """The worker could not run a UDF: it did not import or load, or its result had the wrong
    type. Fix the UDF or its reference; the worker lives on."""


class WorkerCrashed(QuiverError):
    """A worker process ended or lost its connection mid-run (crash, kill, out of memory).

    ``exit_status`` or ``signal`` says how it ended, ``log_tail`` the last lines it printed.
    """

    def __init__(self, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message, detail)
        detail = detail or {}
        self.exit_status: int | None = detail.get("exit_status")
        self.signal: int | None = detail.get("signal")


class UdfTimeout(QuiverError):
    """A worker did not answer a batch within the session's ``batch_timeout`` and was stopped."""


class ProtocolError(QuiverError):
    """A worker broke the quiver.v1 protocol, or answered with the wrong rows or columns."""


class InvalidInput(QuiverError, ValueError):
    """The request was wrong before any data moved: a column that does not exist, a UDF name
    given twice, an argument of the wrong type, a bad option."""


class SessionClosed(QuiverError, RuntimeError):
    """The session was closed; open a new :class:`quiver.Session`."""


def _rebuild(cls: type[QuiverError], args: tuple[Any, ...], fields: dict[str, Any]) -> QuiverError:
    """Unpickle a :class:`QuiverError` of class ``cls`` (see ``QuiverError.__reduce__``)."""
    error = cls.__new__(cls, *args)
    Exception.__init__(error, *args)
    error.__dict__.update(fields)
    return error


_BY_KIND: dict[str, type[QuiverError]] = {
    "user_error": UdfError,
    "worker_error": WorkerError,
    "timeout": UdfTimeout,
    "worker_lost": WorkerCrashed,
    "wrong_row_count": ProtocolError,
    "wrong_result_schema": ProtocolError,
    "protocol_violation": ProtocolError,
    "over_memory_cap": WorkerCrashed,
    "batch_too_large": InvalidInput,
}

_INVALID_CODES = {"Invalid", "Key error", "Type error", "Index error"}


def from_engine(code: str, message: str, detail: dict[str, Any] | None) -> QuiverError:
    """Return the exception for an engine failure (called by ``quiver._engine``).

    ``code`` is the Arrow status code's name, ``detail`` the UdfErrorDetail as a dict or None.
    """
    if detail is not None:
        return _BY_KIND.get(detail.get("kind", ""), QuiverError)(message, detail)
    if code in _INVALID_CODES:
        return InvalidInput(message)
    return QuiverError(f"{message} ({code})" if code else message)
