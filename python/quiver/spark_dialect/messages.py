"""Import the generated code of Spark's protocol, or explain how to generate it."""

from __future__ import annotations

try:
    from quiver.spark_dialect.proto import common_pb2 as common
    from quiver.spark_dialect.proto import udf_message_pb2 as spb
    from quiver.spark_dialect.proto import udf_service_pb2 as service
except ImportError as exc:  # pragma: no cover - depends on the checkout's setup state
    raise ImportError(
        "the generated code of Spark's UDF worker protocol (quiver/spark_dialect/proto/*_pb2.py) "
        f"is missing or does not import ({exc}). Generate it by running `bash scripts/setup.sh` "
        "from the repository root."
    ) from exc

SERVICE_NAME = service.DESCRIPTOR.services_by_name["UdfWorker"].full_name
# The one protocol version of Spark's dialect (docs/spark-protocol.md, section 2).
PROTOCOL_VERSION = 1

__all__ = ["PROTOCOL_VERSION", "SERVICE_NAME", "common", "spb"]
