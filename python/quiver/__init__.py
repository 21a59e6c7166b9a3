"""quiver: run user-defined functions out of process over Apache Arrow batches.

Users write UDFs with :func:`quiver.udf`; the ``quiver`` engine runs them in worker processes
started as ``python -m quiver.worker`` and speaks the ``quiver.v1`` protocol with them
(see docs/protocol.md).
"""

from quiver.types import parse_type
from quiver.udf import EVAL_TYPES, UserDefinedFunction, infer_eval_type, udf

__version__ = "0.1.0"

__all__ = [
    "EVAL_TYPES",
    "UserDefinedFunction",
    "__version__",
    "infer_eval_type",
    "parse_type",
    "udf",
]
