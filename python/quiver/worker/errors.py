"""The three ways an execution fails, and how each becomes a quiver.v1 ``Error`` message.

They are named apart from the engine-side errors of :mod:`quiver.errors` (``WorkerError``,
``ProtocolError``) that a Session raises to its user: a ``WorkerFailure`` raised here travels as the
protocol's ``WorkerError`` message, a ``ProtocolViolation`` as its ``ProtocolError``.
"""

from __future__ import annotations

import os
import traceback

import quiver
from quiver._proto import pb
from quiver.worker import sandbox_hint, traceback_locals

_QUIVER_DIR = os.path.dirname(os.path.abspath(quiver.__file__)) + os.sep
# An async UDF's error passes through the event loop on its way out; its frames say nothing
# about the UDF. (Located beside os.py so that a worker need not import asyncio.)
_ASYNCIO_DIR = os.path.join(os.path.dirname(os.path.abspath(os.__file__)), "asyncio") + os.sep


class ExecutionError(Exception):
    """End the current execution with one ``Error`` message."""

    def to_proto(self) -> pb.Error:
        """Return the Error message (without a sequence number)."""
        raise NotImplementedError


class UserError(ExecutionError):
    """The UDF's own code raised ``exc``."""

    def __init__(self, udf_name: str, exc: BaseException) -> None:
        super().__init__(f"UDF {udf_name!r} raised {type(exc).__name__}: {exc}")
        self.udf_name = udf_name
        self.exc = exc

    def to_proto(self) -> pb.Error:
        """Return an Error holding a UserError with the user's frames only."""
        return pb.Error(
            user_error=pb.UserError(
                udf_name=self.udf_name,
                message=str(self.exc),
                error_class=error_class_name(self.exc),
                traceback=user_traceback(self.exc),
            )
        )


class WorkerFailure(ExecutionError):
    """The worker cannot run a UDF for a reason outside the UDF's code."""

    def __init__(self, message: str, udf_name: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.udf_name = udf_name

    def to_proto(self) -> pb.Error:
        """Return an Error holding a WorkerError."""
        return pb.Error(worker_error=pb.WorkerError(message=self.message, udf_name=self.udf_name))


class ProtocolViolation(ExecutionError):
    """The engine sent something the protocol does not allow here."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_proto(self) -> pb.Error:
        """Return an Error holding a ProtocolError."""
        return pb.Error(protocol_error=pb.ProtocolError(message=self.message))


def error_class_name(exc: BaseException) -> str:
    """Name the class of ``exc``: bare for builtins, module-qualified otherwise."""
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def user_traceback(exc: BaseException) -> str:
    """Format ``exc``'s traceback without the frames that belong to quiver itself.

    When the engine asked for them (traceback_locals.py), the failing frame's locals follow;
    under the sandbox, the rule a refused call broke (sandbox_hint.py).
    """
    summary = traceback.TracebackException.from_exception(exc)
    _drop_quiver_frames(summary, set())
    text = "".join(summary.format())
    if traceback_locals.requested():
        text += traceback_locals.format_failing_locals(exc, _is_internal_file)
    return text + sandbox_hint.explain(exc)


def _is_internal_file(filename: str) -> bool:
    return is_quiver_file(filename) or os.path.abspath(filename).startswith(_ASYNCIO_DIR)


def _drop_quiver_frames(summary: traceback.TracebackException, seen: set[int]) -> None:
    """Remove quiver's frames from ``summary`` and from the exceptions chained to it."""
    if id(summary) in seen:
        return
    seen.add(id(summary))
    kept = [
        frame
        for frame in summary.stack
        if not is_quiver_file(frame.filename)
        and not os.path.abspath(frame.filename).startswith(_ASYNCIO_DIR)
    ]
    summary.stack = traceback.StackSummary.from_list(kept)
    for chained in (summary.__cause__, summary.__context__):
        if chained is not None:
            _drop_quiver_frames(chained, seen)


def is_quiver_file(filename: str) -> bool:
    """Tell whether ``filename`` lies inside the quiver package."""
    return os.path.abspath(filename).startswith(_QUIVER_DIR)
