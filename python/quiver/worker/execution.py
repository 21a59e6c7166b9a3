"""One execution: resolve the UDFs of an ``Init``, run them over batches, count the work."""

from __future__ import annotations

import inspect
import logging
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import pyarrow as pa

from quiver import metrics as user_metrics
from quiver._proto import pb
from quiver.protocol import PROTOCOL_VERSION
from quiver.retry import CallPolicy
from quiver.udf import (
    EVAL_TYPES,
    SCALAR_ARROW,
    SCALAR_ARROW_ITER,
    SCALAR_PANDAS,
    UserDefinedFunction,
    infer_eval_type,
)
from quiver.worker.batch_codec import (
    BatchDecoder,
    ResultEncoder,
    check_names,
    encode_batch,
    error_reason,
)
from quiver.worker.call_policy import with_call_options
from quiver.worker.errors import ExecutionError, ProtocolViolation, UserError, WorkerFailure
from quiver.worker.evaluators import (
    ArrowEvaluator,
    PandasEvaluator,
    coerce_result,
    make_evaluator,
)
from quiver.worker.instances import instance_for, parse_constructor_args
from quiver.worker.kinds import KindExecution, is_kind_init
from quiver.worker.loader import load_udf_object

_EVAL_TYPE_NAMES = {
    pb.SCALAR_ARROW: SCALAR_ARROW,
    pb.SCALAR_PANDAS: SCALAR_PANDAS,
    pb.SCALAR_ARROW_ITER: SCALAR_ARROW_ITER,
}

# Evaluators that call the UDF once per batch, on the caller's thread, with nothing to wait
# for: the native batch loop may run their batches.
_PER_BATCH_EVALUATORS = (ArrowEvaluator, PandasEvaluator)


@dataclass
class Metrics:
    """Counters of one execution, reported in FinishResponse / CancelResponse."""

    batches: int = 0
    rows_in: int = 0
    rows_out: int = 0
    udf_nanos: int = 0
    codec_nanos: int = 0
    # The UDFs' own counters when the execution began: it reports what they grew by.
    counters_before: dict[str, int] = field(default_factory=user_metrics.snapshot)

    def to_proto(self, policy_counters: dict[str, int] | None = None) -> pb.Metrics:
        """Return the Metrics message, with the process's peak resident set size and the
        counters of the UDFs' call policies beside their own."""
        counters = user_metrics.since(self.counters_before)
        counters.update(policy_counters or {})
        return pb.Metrics(
            batches=self.batches,
            rows_in=self.rows_in,
            rows_out=self.rows_out,
            udf_nanos=self.udf_nanos,
            codec_nanos=self.codec_nanos,
            peak_rss_bytes=peak_rss_bytes(),
            counters=counters,
        )


def peak_rss_bytes() -> int:
    """Return the peak resident set size of this process in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kibibytes, macOS bytes.
    return peak if sys.platform == "darwin" else peak * 1024


@dataclass
class BoundUdf:
    """A loaded UDF with everything needed to call it on a batch."""

    name: str
    offsets: tuple[int, ...]
    return_type: pa.DataType
    eval_type: str
    evaluator: ArrowEvaluator


class Execution:
    """The state of one execution between Init and FinishResponse / CancelResponse."""

    def __init__(self, init: pb.Init, log: logging.Logger) -> None:
        """Hold ``init``; nothing is checked or loaded until :meth:`load`."""
        self.init = init
        self.log = log
        self.metrics = Metrics()
        self.payloads = [bytearray(udf.payload) for udf in init.udfs]
        self.chunks_left = init.payload_chunk_count
        self.udfs: list[BoundUdf] | None = None
        self.input_schema: pa.Schema | None = None
        self.result_schema: pa.Schema | None = None
        self.decoder = BatchDecoder()
        self.encoder: ResultEncoder | None = None
        self.kind: KindExecution | None = None  # grouped and table kinds (worker/kinds.py)
        # Per UDF (by index), the future the next batch in flight waits on before calling it.
        self._turns: dict[int, Any] = {}

    @property
    def loaded(self) -> bool:
        """Tell whether the UDFs are loaded (InitResponse was sent)."""
        return self.udfs is not None

    def add_payload_chunk(self, chunk: pb.PayloadChunk) -> None:
        """Append a PayloadChunk to its UDF's payload."""
        if self.chunks_left == 0:
            raise ProtocolViolation(
                f"PayloadChunk beyond the {self.init.payload_chunk_count} announced by Init"
            )
        if chunk.udf_index >= len(self.payloads):
            raise ProtocolViolation(
                f"PayloadChunk for udf_index {chunk.udf_index}, but Init has "
                f"{len(self.payloads)} UDFs"
            )
        self.payloads[chunk.udf_index] += chunk.data
        self.chunks_left -= 1

    def load(self) -> bytes:
        """Check the Init, load every UDF and return the serialized result schema."""
        self._check_init()
        self.input_schema = _read_schema(self.init.input_schema, "Init.input_schema")
        if is_kind_init(self.init):
            self.kind = KindExecution(
                self.init, self.payloads, self.input_schema, self._timed_user_call
            )
            self.result_schema = self.kind.result_schema
            self.udfs = []
            return self.result_schema.serialize().to_pybytes()
        udfs = [self._bind(i, definition) for i, definition in enumerate(self.init.udfs)]
        # A UDF that keeps failing rows (on_error="null") adds a NAME__error column after
        # every UDF's result (docs/protocol.md, "Rows that fail").
        self.result_schema = pa.schema(
            [pa.field(udf.name, udf.return_type, nullable=True) for udf in udfs]
            + [
                pa.field(f"{udf.name}__error", pa.string(), nullable=True)
                for udf in udfs
                if udf.evaluator.keeps_errors
            ]
        )
        self.udfs = udfs
        self.encoder = ResultEncoder(self.result_schema)
        return self.result_schema.serialize().to_pybytes()

    def _check_init(self) -> None:
        """Reject an unsupported protocol version, data format or an empty UDF list."""
        init = self.init
        if init.protocol_version != PROTOCOL_VERSION:
            raise ProtocolViolation(
                f"Init has protocol_version {init.protocol_version}; this worker speaks "
                f"{PROTOCOL_VERSION}"
            )
        if init.data_format != pb.ARROW_IPC_STREAM:
            name = _enum_name(pb.DataFormat, init.data_format)
            raise WorkerFailure(
                f"Init has data_format {name}; this worker reads ARROW_IPC_STREAM only"
            )
        if not init.udfs:
            raise ProtocolViolation("Init has no UDFs")

    def _bind(self, index: int, definition: pb.UdfDefinition) -> BoundUdf:
        """Load one UDF and settle its return type, eval type and arguments."""
        name = definition.name
        obj = load_udf_object(name, definition.payload_format, bytes(self.payloads[index]))
        engine_type = _engine_return_type(definition)
        engine_eval = _engine_eval_type(definition)
        decode = True  # an undecorated function gets plain layouts (docs/types.md)
        policy = CallPolicy()
        if isinstance(obj, UserDefinedFunction):
            if getattr(obj, "sandbox", None) is not None:
                _require_sandbox(name)
            func, return_type, eval_type = obj.func, obj.returns, obj.eval_type
            decode, policy = obj.decode, obj.policy
            _check_declared(name, return_type, engine_type, eval_type, engine_eval)
        else:
            func = obj
            return_type, eval_type = _undecorated_types(name, obj, engine_type, engine_eval)
        func = self._callable(name, definition, obj, func, index)
        offsets = tuple(definition.argument_offsets)
        self._check_offsets(name, offsets)
        _check_arity(name, func, len(offsets), eval_type)
        options = getattr(definition, "call_options", "")
        policy = with_call_options(name, options, policy, func, eval_type)
        evaluator = make_evaluator(
            eval_type, func, name, self.init.session_time_zone, decode, policy, return_type
        )
        self.log.debug("UDF %r: %s returns %s, arguments %s", name, eval_type, return_type, offsets)
        return BoundUdf(name, offsets, return_type, eval_type, evaluator)

    def _callable(
        self, name: str, definition: pb.UdfDefinition, obj: Any, func: Any, index: int
    ) -> Any:
        """Return what is called per batch: ``func``, or this worker's instance of a class UDF."""
        kwargs = dict(getattr(obj, "init_kwargs", None) or {})
        kwargs.update(parse_constructor_args(name, getattr(definition, "constructor_args", "")))
        if not inspect.isclass(func):
            if kwargs:
                raise WorkerFailure(
                    f"UDF {name!r} is a function, but constructor arguments were given "
                    f"({', '.join(kwargs)}); only class UDFs take them",
                    name,
                )
            return func
        payload = bytes(self.payloads[index])
        return instance_for(name, func, kwargs, definition.payload_format, payload)

    def _check_offsets(self, name: str, offsets: tuple[int, ...]) -> None:
        """Reject argument offsets outside the input schema."""
        width = len(self.input_schema) if self.input_schema is not None else None
        for offset in offsets:
            if offset < 0 or (width is not None and offset >= width):
                raise ProtocolViolation(
                    f"UDF {name!r} has argument offset {offset}, but the input schema has "
                    f"{width} columns"
                )

    # ---- batches ----

    def run_batch(self, body: pa.Buffer | BinaryIO) -> pa.Buffer:
        """Run every UDF over the batch in ``body``; return the result as one IPC stream.

        ``body`` is an Arrow buffer or a file-like stream over the bytes as they arrived.
        """
        batch = self._decode_timed(body)
        if self.kind is not None:
            return self._encode(batch, self.kind.run(batch))
        return self._encode(batch, self.run_udfs(batch))

    def run_udfs(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Run every UDF over a decoded batch; return the result batch (not yet counted)."""
        assert self.udfs is not None
        columns = [self._run_udf(udf, batch) for udf in self.udfs]
        errors = [
            udf.evaluator.take_errors(batch.num_rows)
            for udf in self.udfs
            if udf.evaluator.keeps_errors
        ]
        return self._result(columns, errors)

    # ---- batches the native batch loop reads and writes (worker/native_batches.py) ----

    def native_schema(self) -> tuple[bytes, pa.Schema] | None:
        """Return the schema message (bytes) and schema of this execution's batches when the
        native batch loop may run the next ones: scalar UDFs called once per batch with no
        call policy (async, row and iterator UDFs, the grouped and table kinds stay here),
        after a first batch decoded here; None otherwise."""
        if self.kind is not None or not self.udfs or self.result_schema is None:
            return None
        if any(type(udf.evaluator) not in _PER_BATCH_EVALUATORS for udf in self.udfs):
            return None
        return self.decoder.known_schema

    def count_batch(self, batch: pa.RecordBatch, result: pa.RecordBatch) -> None:
        """Count a batch answered (its result encoded elsewhere: the native batch loop)."""
        self.metrics.batches += 1
        self.metrics.rows_in += batch.num_rows
        self.metrics.rows_out += result.num_rows

    def encode(self, batch: pa.RecordBatch, result: pa.RecordBatch) -> list[bytes | pa.Buffer]:
        """Encode a result batch and count the batch."""
        return self._encode(batch, result)

    # ---- several batches in flight (async row UDFs) ----

    @property
    def overlaps(self) -> bool:
        """Tell whether several batches may run at once: an async row UDF waits on calls and
        nothing needs the batches one at a time (docs/protocol.md, "while a batch waits")."""
        evaluators = [udf.evaluator for udf in self.udfs or ()]
        return (
            self.kind is None
            and any(e.overlaps for e in evaluators)
            and not any(e.blocks_overlap for e in evaluators)
        )

    async def run_batch_async(self, body: pa.Buffer | BinaryIO) -> pa.Buffer:
        """:meth:`run_batch` for a batch that runs while others wait on their calls.

        Each UDF is called on the batches in the order they arrived (an async row UDF queues
        its rows in its lanes in that order), so a UDF that keeps state between batches sees
        them in order; its rows' errors are kept per batch.
        """
        import asyncio  # slow to import: only when an async UDF runs

        assert self.udfs is not None
        batch = self._decode_timed(body)
        # Take this batch's turn at every UDF now, before any await: the batches start in the
        # order they arrived, so each waits at each UDF for the one before it.
        loop = asyncio.get_running_loop()
        waits = [self._turns.get(index) for index in range(len(self.udfs))]
        turns = [loop.create_future() for _ in self.udfs]
        self._turns.update(enumerate(turns))
        columns: list[pa.Array] = []
        errors: list[pa.Array] = []
        try:
            for udf, previous, mine in zip(self.udfs, waits, turns, strict=True):
                if previous is not None:
                    await previous  # the batch before this one called the UDF already
                raw, udf_errors = await self._call_in_turn(udf, batch, mine)
                columns.append(self._coerce(udf, raw, batch.num_rows))
                if udf_errors is not None:
                    errors.append(udf_errors)
        finally:
            for turn in turns:  # a batch that failed or was cancelled lets the next ones go
                if not turn.done():
                    turn.set_result(None)
        return self._encode(batch, self._result(columns, errors))

    async def _call_in_turn(self, udf: BoundUdf, batch: pa.RecordBatch, turn: Any) -> Any:
        """Call one UDF on a batch and end this batch's ``turn`` at it as soon as the next
        batch may call it: once an async row UDF's rows are queued, or a plain UDF returned.
        Returns the UDF's result and its rows' errors (None when it keeps none)."""
        import asyncio

        args = udf.evaluator.prepare([batch.column(i) for i in udf.offsets])
        if not udf.evaluator.overlaps:
            raw = self._timed_user_call(udf.name, udf.evaluator.call, args)
            turn.set_result(None)
            keeps = udf.evaluator.keeps_errors
            return raw, udf.evaluator.take_errors(batch.num_rows) if keeps else None
        pending = asyncio.ensure_future(
            self._timed_user_call_async(udf.name, udf.evaluator.call_async(args))
        )
        await asyncio.sleep(0)  # the rows are queued in the lanes now
        turn.set_result(None)
        return await pending

    async def stop_calls(self) -> None:
        """Cancel the calls the batches in flight still wait on."""
        self._turns.clear()
        for udf in self.udfs or ():
            stop = getattr(udf.evaluator, "stop_calls", None)
            if stop is not None:
                await stop()

    async def _timed_user_call_async(self, name: str, pending: Any) -> Any:
        """Await user code: count its time, wrap what it raises as a UserError."""
        started = time.perf_counter_ns()
        try:
            return await pending
        except ExecutionError:
            raise
        except (Exception, SystemExit) as exc:
            raise UserError(name, exc) from exc
        finally:
            self.metrics.udf_nanos += time.perf_counter_ns() - started

    # ---- the pieces of a batch ----

    def _decode_timed(self, body: pa.Buffer | BinaryIO) -> pa.RecordBatch:
        """Decode a batch, counting the time as codec time."""
        assert self.udfs is not None and self.result_schema is not None
        started = time.perf_counter_ns()
        batch = self._decode(body)
        self.metrics.codec_nanos += time.perf_counter_ns() - started
        return batch

    def _result(self, columns: list[pa.Array], errors: list[pa.Array]) -> pa.RecordBatch:
        """Put the UDFs' columns, then their error columns, into one result batch."""
        return pa.RecordBatch.from_arrays(columns + errors, schema=self.result_schema)

    def _encode(self, batch: pa.RecordBatch, result: pa.RecordBatch) -> pa.Buffer:
        """Encode a result batch and count the batch."""
        started = time.perf_counter_ns()
        # Scalar results have the Init's result schema, encoded with its message kept; the
        # grouped and table kinds encode their own.
        if self.encoder is not None:
            encoded = self.encoder.encode(result)
        else:
            encoded = encode_batch(result)
        self.metrics.codec_nanos += time.perf_counter_ns() - started
        self.count_batch(batch, result)
        return encoded

    def _decode(self, body: pa.Buffer | BinaryIO) -> pa.RecordBatch:
        """Read the one record batch of a Data body and check it against the input schema."""
        batch = self.decoder.decode(body)
        if self.decoder.last_was_known:
            return batch  # the schema of an earlier batch of this execution: checked then
        expected = self.input_schema
        if expected is not None and batch.schema.types != expected.types:
            raise ProtocolViolation(
                f"a Data batch has column types ({_types_text(batch.schema)}), but "
                f"Init.input_schema has ({_types_text(expected)})"
            )
        for udf in self.udfs or ():
            if any(offset >= batch.num_columns for offset in udf.offsets):
                raise ProtocolViolation(
                    f"UDF {udf.name!r} has argument offsets {list(udf.offsets)}, but the Data "
                    f"batch has {batch.num_columns} columns"
                )
        return batch

    def _run_udf(self, udf: BoundUdf, batch: pa.RecordBatch) -> pa.Array:
        """Call one UDF on its argument columns and check what it returns."""
        args = udf.evaluator.prepare([batch.column(i) for i in udf.offsets])
        raw = self._timed_user_call(udf.name, udf.evaluator.call, args)
        return self._coerce(udf, raw, batch.num_rows)

    def _coerce(self, udf: BoundUdf, raw: Any, num_rows: int) -> pa.Array:
        """Check and convert what a UDF returned, counting the time as codec time."""
        started = time.perf_counter_ns()
        try:
            return coerce_result(raw, udf.return_type, udf.name, num_rows)
        finally:
            self.metrics.codec_nanos += time.perf_counter_ns() - started

    def _timed_user_call(self, name: str, call: Callable[..., Any], *args: Any) -> Any:
        """Run user code, count its time, and wrap what it raises as a UserError."""
        started = time.perf_counter_ns()
        try:
            return call(*args)
        except ExecutionError:
            raise
        except (Exception, SystemExit) as exc:  # anything the UDF raises is the user's error
            raise UserError(name, exc) from exc
        finally:
            self.metrics.udf_nanos += time.perf_counter_ns() - started

    # ---- end of the execution ----

    def metrics_proto(self) -> pb.Metrics:
        """Return the execution's Metrics, with each call policy's counts as counters
        ``NAME__calls``, ``NAME__retries``, ``NAME__retry_wait_ms`` and ``NAME__timeouts``
        (docs/metrics.md) for every UDF that has a policy (async, row, retried or keeping
        errors) and a name a counter can have."""
        counters: dict[str, int] = {}
        for udf in self.udfs or ():
            counts = udf.evaluator.policy_counts
            if counts is None or not user_metrics.is_metric_name(udf.name):
                continue
            counters[f"{udf.name}__calls"] = counts.calls
            counters[f"{udf.name}__retries"] = counts.retries
            counters[f"{udf.name}__retry_wait_ms"] = round(counts.retry_wait_seconds * 1000)
            counters[f"{udf.name}__timeouts"] = counts.timeouts
        return self.metrics.to_proto(counters)

    def finish(self) -> None:
        """Let iterator UDFs run to their end; raise the first error one of them reports."""
        first: ExecutionError | None = None
        for udf in self.udfs or ():
            counts = udf.evaluator.policy_counts
            if counts is not None and (counts.retries or counts.rows_failed):
                self.log.info("UDF %r: %s", udf.name, counts)
            try:
                self._timed_user_call(udf.name, udf.evaluator.finish)
            except ExecutionError as exc:
                first = first or exc
        if first is not None:
            raise first

    def close(self) -> None:
        """Stop every UDF early (Cancel, an error, or shutdown); log what their cleanup raises."""
        for udf in self.udfs or ():
            try:
                udf.evaluator.close()
            except (Exception, SystemExit) as exc:
                self.log.warning("UDF %r raised while being stopped: %r", udf.name, exc)


def _read_schema(data: bytes, what: str) -> pa.Schema | None:
    """Read an IPC schema message, or return None when ``data`` is empty."""
    if not data:
        return None
    try:
        schema = pa.ipc.read_schema(pa.py_buffer(data))
        check_names(schema)
    except Exception as exc:  # whatever Arrow makes of bad bytes, it is the peer's error
        raise ProtocolViolation(
            f"{what} is not an Arrow IPC schema message: {error_reason(exc)}"
        ) from exc
    return schema


def _engine_return_type(definition: pb.UdfDefinition) -> pa.DataType | None:
    """Return the type the engine declared for a UDF, or None."""
    schema = _read_schema(definition.return_type, f"return_type of UDF {definition.name!r}")
    if schema is None:
        return None
    if len(schema) != 1:
        raise ProtocolViolation(
            f"return_type of UDF {definition.name!r} must be a schema with one field, "
            f"it has {len(schema)}"
        )
    return schema.field(0).type


def _engine_eval_type(definition: pb.UdfDefinition) -> str | None:
    """Return the eval type the engine asked for, or None when unspecified."""
    if definition.eval_type == pb.EVAL_TYPE_UNSPECIFIED:
        return None
    name = _EVAL_TYPE_NAMES.get(definition.eval_type)
    if name is None:
        raise WorkerFailure(
            f"UDF {definition.name!r} has eval_type {definition.eval_type}, which this worker "
            f"does not know; it runs {', '.join(EVAL_TYPES)}",
            definition.name,
        )
    return name


def _require_sandbox(name: str) -> None:
    """Refuse a UDF declared ``@quiver.udf(sandbox=...)`` in a worker that is not sandboxed
    (the engine missed the declaration): never run it unsandboxed."""
    from quiver.sandbox import running_sandboxed, unsandboxed_refusal

    if not running_sandboxed():
        raise WorkerFailure(unsandboxed_refusal(name), name)


def _check_declared(
    name: str,
    return_type: pa.DataType,
    engine_type: pa.DataType | None,
    eval_type: str,
    engine_eval: str | None,
) -> None:
    """Reject a decorated UDF whose types disagree with the ones the engine declared."""
    if engine_type is not None and engine_type != return_type:
        raise WorkerFailure(
            f"UDF {name!r} declares returns={return_type}, but the engine declared return type "
            f"{engine_type}",
            name,
        )
    if engine_eval is not None and engine_eval != eval_type:
        raise WorkerFailure(
            f"UDF {name!r} is a {eval_type} UDF, but the engine asked for {engine_eval}", name
        )


def _undecorated_types(
    name: str, obj: Any, engine_type: pa.DataType | None, engine_eval: str | None
) -> tuple[pa.DataType, str]:
    """Settle the return type and eval type of a function without @quiver.udf."""
    if not callable(obj):
        raise WorkerFailure(f"UDF {name!r} names a {type(obj).__name__}, not a function", name)
    if engine_type is None:
        raise WorkerFailure(
            f"UDF {name!r} has no return type: decorate the function with "
            "@quiver.udf(returns=...) (or have the engine declare the type)",
            name,
        )
    if engine_eval is not None:
        return engine_type, engine_eval
    try:
        return engine_type, infer_eval_type(obj)
    except TypeError:
        return engine_type, SCALAR_ARROW  # no usable hints: the Arrow form is the default


def _check_arity(name: str, func: Any, count: int, eval_type: str) -> None:
    """Reject a UDF that cannot take the arguments the engine will pass."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return  # builtins and some C functions have no signature; the first call will tell
    args = (iter(()),) if eval_type == SCALAR_ARROW_ITER else tuple(range(count))
    try:
        signature.bind(*args)
    except TypeError as exc:
        passed = "one iterator" if eval_type == SCALAR_ARROW_ITER else f"{count} argument(s)"
        raise WorkerFailure(
            f"UDF {name!r} cannot be called with {passed} ({eval_type}): {exc}", name
        ) from None


def _enum_name(enum: Any, value: int) -> str:
    """Name an enum value, or show the number when this worker does not know it."""
    try:
        return f"{enum.Name(value)} ({value})"
    except ValueError:
        return str(value)


def _types_text(schema: pa.Schema) -> str:
    """List a schema's column types."""
    return ", ".join(str(t) for t in schema.types)
