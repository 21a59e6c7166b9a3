"""Spark's ``Init`` and its ``PayloadChunk``s, checked and turned into quiver.v1's ``Init``.

The rules are docs/spark-protocol.md, section 2. Once translated, the execution is quiver.v1's
(:class:`quiver.worker.execution.Execution`): one UDF whose arguments are every column of
``input_schema`` in order, whose declared return type is ``output_schema``'s one field.
"""

from __future__ import annotations

import json
import zlib

import pyarrow as pa

from quiver._proto import pb
from quiver.protocol import PROTOCOL_VERSION as QUIVER_PROTOCOL_VERSION
from quiver.spark_dialect.messages import PROTOCOL_VERSION, common, spb
from quiver.worker.errors import ProtocolViolation, WorkerFailure
from quiver.worker.loader import PYTHON_CLOUDPICKLE, PYTHON_REF, load_udf_object

# Spark's eval_type strings this worker runs, as quiver.v1's enum; grouped and table kinds are
# not offered in this dialect (docs/spark-protocol.md, section 8).
EVAL_TYPES = {
    "SCALAR_ARROW": pb.SCALAR_ARROW,
    "SCALAR_PANDAS": pb.SCALAR_PANDAS,
    "SCALAR_ARROW_ITER": pb.SCALAR_ARROW_ITER,
}
CONSTRUCTOR_ARGS_KEY = "constructor_args"


class PendingInit:
    """An ``Init`` whose payload may still be arriving in chunks."""

    def __init__(self, init: spb.Init) -> None:
        """Hold ``init`` and its inline payload bytes."""
        self.init = init
        self.chunked = init.is_chunking_payload
        self.payload = bytearray(init.udf.payload)

    def add_chunk(self, chunk: spb.PayloadChunk) -> bool:
        """Append a chunk's bytes; return True when it was the last one."""
        self.payload += chunk.data
        return chunk.last

    def translate(self) -> tuple[pb.Init, pa.Schema]:
        """Check the whole Init; return quiver.v1's Init and the input schema.

        Raises ProtocolViolation or WorkerFailure as the contract says for each field.
        """
        init = self.init
        _check_version_and_format(init)
        payload = bytes(self.payload)
        _check_payload(init.udf, payload)
        input_schema = _input_schema(init)
        udf = init.udf
        definition = pb.UdfDefinition(
            name=udf.name if udf.HasField("name") else _default_name(udf.format, payload),
            payload_format=udf.format,
            payload=payload,
            eval_type=_eval_type(udf),
            argument_offsets=list(range(len(input_schema))),
            return_type=_output_schema(init),
            constructor_args=_constructor_args(init),
        )
        quiver_init = pb.Init(
            protocol_version=QUIVER_PROTOCOL_VERSION,
            data_format=pb.ARROW_IPC_STREAM,
            udfs=[definition],
            input_schema=init.input_schema,
            configuration=dict(init.session_conf),
            session_time_zone=init.timezone,
        )
        return quiver_init, input_schema


def _check_version_and_format(init: spb.Init) -> None:
    """Reject a protocol version other than 1 and any data format but ARROW."""
    if init.HasField("protocol_version") and init.protocol_version != PROTOCOL_VERSION:
        raise ProtocolViolation(
            f"Init has protocol_version {init.protocol_version}; this worker speaks version "
            f"{PROTOCOL_VERSION} of Spark's UDF worker protocol"
        )
    if init.data_format != common.ARROW:
        try:
            name = f"{common.UDFWorkerDataFormat.Name(init.data_format)} ({init.data_format})"
        except ValueError:
            name = f"{init.data_format} (unknown)"
        raise ProtocolViolation(f"Init has data_format {name}; this worker supports ARROW (1) only")


def _check_payload(udf: spb.UdfPayload, payload: bytes) -> None:
    """Check the assembled payload against payload_size and payload_crc32, when given."""
    if udf.HasField("payload_size") and udf.payload_size != len(payload):
        raise ProtocolViolation(
            f"the UDF payload has {len(payload)} bytes (inline and chunks), but "
            f"payload_size says {udf.payload_size}"
        )
    if udf.HasField("payload_crc32"):
        crc = zlib.crc32(payload)
        if crc != udf.payload_crc32:
            raise ProtocolViolation(
                f"the UDF payload's CRC-32 is {crc:#010x}, but payload_crc32 says "
                f"{udf.payload_crc32:#010x}: the payload was damaged or assembled out of order"
            )


def _input_schema(init: spb.Init) -> pa.Schema:
    """Read the required input schema (one encapsulated Arrow IPC schema message)."""
    if not init.HasField("input_schema") or not init.input_schema:
        raise ProtocolViolation(
            "Init has no input_schema: a quiver worker needs the Arrow schema of the "
            "DataRequest batches (every field is an argument of the UDF, in order)"
        )
    return _read_schema(init.input_schema, "Init.input_schema")


def _output_schema(init: spb.Init) -> bytes:
    """Return output_schema's bytes (quiver.v1's return_type), checked to have one field."""
    if not init.HasField("output_schema") or not init.output_schema:
        return b""
    schema = _read_schema(init.output_schema, "Init.output_schema")
    if len(schema) != 1:
        raise ProtocolViolation(
            f"Init.output_schema must have exactly one field (the UDF's result), it has "
            f"{len(schema)}"
        )
    return init.output_schema


def _read_schema(data: bytes, what: str) -> pa.Schema:
    """Read an encapsulated Arrow IPC schema message."""
    try:
        schema = pa.ipc.read_schema(pa.py_buffer(data))
        str(schema)  # a field name that is not UTF-8 fails here, not later in a UDF
    except Exception as exc:  # whatever Arrow makes of bad bytes, it is the engine's error
        raise ProtocolViolation(f"{what} is not an Arrow IPC schema message: {exc}") from exc
    return schema


def _eval_type(udf: spb.UdfPayload) -> pb.EvalType:
    """Map Spark's free-form eval_type onto quiver's; unset lets the worker decide."""
    if not udf.HasField("eval_type") or not udf.eval_type:
        return pb.EVAL_TYPE_UNSPECIFIED
    try:
        return EVAL_TYPES[udf.eval_type]
    except KeyError:
        raise WorkerFailure(
            f"UDF eval_type {udf.eval_type!r} is not one this worker runs in Spark's dialect; "
            f"it runs {', '.join(EVAL_TYPES)} (grouped and table kinds run over quiver.v1)"
        ) from None


def _constructor_args(init: spb.Init) -> str:
    """Return the ``constructor_args`` JSON object of ``parameters`` as text ("" when none)."""
    if not init.HasField("parameters") or not init.parameters:
        return ""
    try:
        parameters = json.loads(init.parameters.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolViolation(f"Init.parameters is not UTF-8 JSON: {exc}") from None
    if not isinstance(parameters, dict):
        raise ProtocolViolation(
            f"Init.parameters must be a JSON object, not {type(parameters).__name__}"
        )
    args = parameters.get(CONSTRUCTOR_ARGS_KEY)
    if args is None:
        return ""
    if not isinstance(args, dict):
        raise ProtocolViolation(
            f"Init.parameters[{CONSTRUCTOR_ARGS_KEY!r}] must be a JSON object of keyword "
            f"arguments, not {type(args).__name__}"
        )
    return json.dumps(args)


def _default_name(payload_format: str, payload: bytes) -> str:
    """Name the result column after the function when ``udf.name`` is unset."""
    if payload_format == PYTHON_REF:
        ref = payload.decode("utf-8", errors="replace")
        return ref.rpartition(":")[2].rpartition(".")[2] or "udf"
    if payload_format == PYTHON_CLOUDPICKLE:
        obj = load_udf_object("(unnamed)", payload_format, payload)  # WorkerError if it cannot
        return str(getattr(obj, "__name__", "") or "udf")
    return "udf"  # the loader rejects the format, naming the ones it knows
