"""quiver: run user-defined functions out of process over Apache Arrow batches.

Users write UDFs with :func:`quiver.udf` and run them over Arrow data with
:class:`quiver.Session` (``help(quiver.Session.map)``) or the ``quiver`` command; the engine
runs them in worker processes started as ``python -m quiver.worker`` and speaks the
``quiver.v1`` protocol with them (see docs/protocol.md).
"""

from quiver import metrics
from quiver.errors import (
    InvalidInput,
    ProtocolError,
    QuiverError,
    SessionClosed,
    UdfError,
    UdfTimeout,
    WorkerCrashed,
    WorkerError,
)
from quiver.kinds import KindFunction, grouped_map, udaf, udtf
from quiver.retry import Retry, RetryAfter
from quiver.session import Session
from quiver.types import parse_type
from quiver.udf import EVAL_TYPES, UserDefinedFunction, infer_eval_type, udf
from quiver.udf_call import UdfCall, call

__version__ = "0.1.0"

__all__ = [
    "EVAL_TYPES",
    "InvalidInput",
    "KindFunction",
    "ProtocolError",
    "QuiverError",
    "Retry",
    "RetryAfter",
    "Session",
    "metrics",
    "SessionClosed",
    "UdfCall",
    "UdfError",
    "UdfTimeout",
    "UserDefinedFunction",
    "WorkerCrashed",
    "WorkerError",
    "__version__",
    "call",
    "grouped_map",
    "infer_eval_type",
    "parse_type",
    "udaf",
    "udf",
    "udtf",
]
