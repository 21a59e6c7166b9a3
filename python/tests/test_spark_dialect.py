"""``python -m quiver.worker --dialect spark``: each rule of docs/spark-protocol.md, sections 2-6.

Every worker is a real process serving Spark's ``UdfWorker`` on a real Unix socket; the engine is
a grpcio client (:mod:`spark_dialect_client`).
"""

from __future__ import annotations

import queue
import time
import zlib
from collections.abc import Iterator

import pyarrow as pa
import pytest
from spark_dialect_client import (
    INT_SCHEMA,
    SparkWorker,
    error_kind,
    int_batch,
    ipc_stream,
    running_worker,
    schema_bytes,
    write_udf_file,
)

from quiver.spark_dialect.proto import common_pb2
from quiver.spark_dialect.proto import udf_message_pb2 as spb


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkWorker]:
    """One worker for the whole module; every test leaves it serving."""
    with running_worker(write_udf_file(tmp_path_factory.mktemp("spark_udfs"))) as worker:
        yield worker


# ---- the success path ----


def test_success_path_answers_each_batch_in_order_with_the_result_schema(shared: SparkWorker):
    call = shared.call()
    init = call.init(shared.ref("plus_one"), udf={"name": "y"})
    assert not init.HasField("error")
    result_schema = pa.ipc.read_schema(pa.py_buffer(init.data))
    assert result_schema == pa.schema([("y", pa.int64())])
    for values in ([1, 2, 3], [None, 41], [], [-1]):
        call.send_batch(int_batch(*values))
        got = call.recv_batch()
        assert got.schema == result_schema
        assert got.column(0).to_pylist() == [None if v is None else v + 1 for v in values]
    call.finish()
    metrics = call.recv_control("finish").metrics
    assert metrics["rows_in"] == metrics["rows_out"] == "6"
    assert metrics["batches_in"] == metrics["batches_out"] == "4"
    assert call.ended()


def test_finish_metrics_carry_every_documented_key(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("plus_one"))
    data = ipc_stream(int_batch(1, 2))
    call.send_data(data)
    call.recv_batch()
    call.finish()
    metrics = dict(call.recv_control("finish").metrics)
    assert set(metrics) == {
        "rows_in",
        "rows_out",
        "batches_in",
        "batches_out",
        "bytes_in",
        "bytes_out",
        "udf_time_ns",
        "codec_time_ns",
        "peak_rss_bytes",
    }
    assert metrics["bytes_in"] == str(len(data))
    assert int(metrics["bytes_out"]) > 0 and int(metrics["peak_rss_bytes"]) > 0
    assert int(metrics["udf_time_ns"]) > 0
    assert call.ended()


def test_unset_name_is_the_functions_own_and_arguments_are_every_column(shared: SparkWorker):
    schema = pa.schema([("a", pa.int64()), ("b", pa.int64())])
    call = shared.call()
    init = call.init(shared.ref("add"), schema)
    assert pa.ipc.read_schema(pa.py_buffer(init.data)).names == ["add"]
    call.send_batch(pa.record_batch({"a": [1, 2], "b": [10, 20]}, schema=schema))
    assert call.recv_batch().column(0).to_pylist() == [11, 22]
    call.finish()
    call.recv_control("finish")
    assert call.ended()


def test_pandas_eval_type_and_session_timezone_are_taken(shared: SparkWorker):
    schema = pa.schema([("s", pa.string())])
    call = shared.call()
    call.init(shared.ref("shout"), schema, udf={"eval_type": "SCALAR_PANDAS"}, timezone="UTC")
    call.send_batch(pa.record_batch({"s": ["ada", None]}))
    assert call.recv_batch().column(0).to_pylist() == ["ADA", None]
    call.finish()
    call.recv_control("finish")
    assert call.ended()


def test_cloudpickle_payload_and_constructor_args_in_parameters(shared: SparkWorker):
    import cloudpickle

    import quiver

    class Tripled:
        def __init__(self, factor: int = 1) -> None:
            self.factor = factor

        def __call__(self, x: pa.Array) -> pa.Array:
            import pyarrow.compute as pc

            return pc.multiply(x, self.factor)

    payload = cloudpickle.dumps(quiver.udf(returns="int64")(Tripled))
    call = shared.call()
    init = call.init(
        "",
        payload=payload,
        payload_format="python/cloudpickle",
        parameters=b'{"constructor_args": {"factor": 3}, "other": 1}',
    )
    assert not init.HasField("error"), init
    call.send_batch(int_batch(1, 2))
    assert call.recv_batch().column(0).to_pylist() == [3, 6]
    call.finish()
    call.recv_control("finish")
    assert call.ended()


def test_chunked_payload_with_size_and_crc_loads(shared: SparkWorker):
    payload = shared.ref("plus_one").encode()
    call = shared.call()
    udf = spb.UdfPayload(
        payload=payload[:5],
        format="python/ref",
        payload_size=len(payload),
        payload_crc32=zlib.crc32(payload),
    )
    call.send(
        init=spb.Init(
            data_format=common_pb2.ARROW,
            udf=udf,
            is_chunking_payload=True,
            input_schema=schema_bytes(INT_SCHEMA),
        )
    )
    call.send(payload=spb.PayloadChunk(data=payload[5:9]))
    call.send(payload=spb.PayloadChunk(data=b""))  # empty chunks add nothing
    call.send(payload=spb.PayloadChunk(data=payload[9:], last=True))
    assert not call.recv_control("init").HasField("error")
    call.send_batch(int_batch(7))
    assert call.recv_batch().column(0).to_pylist() == [8]
    call.finish()
    call.recv_control("finish")
    assert call.ended()


def test_several_batches_in_one_request_and_a_bare_batch_message(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("plus_one"))
    call.send_data(ipc_stream(int_batch(1), int_batch(2, 3)))
    assert call.recv_batch().column(0).to_pylist() == [2]
    assert call.recv_batch().column(0).to_pylist() == [3, 4]
    call.send_data(int_batch(10).serialize().to_pybytes())  # no schema message
    assert call.recv_batch().column(0).to_pylist() == [11]
    call.finish()
    assert call.recv_control("finish").metrics["batches_out"] == "3"
    assert call.ended()


def test_concurrent_streams_are_served_side_by_side(shared: SparkWorker):
    slow, fast = shared.call(), shared.call()
    slow.init(shared.ref("nap"))
    fast.init(shared.ref("plus_one"))
    slow.send_batch(int_batch(1500))
    time.sleep(0.1)
    fast.send_batch(int_batch(1))
    assert fast.recv_batch().column(0).to_pylist() == [2]
    with pytest.raises(queue.Empty):  # answered while the slow stream's UDF still sleeps
        slow.recv(timeout=0)
    assert slow.recv_batch().column(0).to_pylist() == [1500]
    for call in (slow, fast):
        call.finish()
        call.recv_control("finish")
        assert call.ended()


# ---- errors ----


def test_user_error_has_message_class_and_traceback_then_cancel(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("fails"))
    call.send_batch(int_batch(1))
    call.send_batch(int_batch(13))
    call.send_batch(int_batch(2))  # after the error: not answered
    assert call.recv_batch().column(0).to_pylist() == [1]
    kind, user = error_kind(call.recv_control("error").error)
    assert kind == "user"
    assert user.message == "thirteen is unlucky"
    assert user.error_class == "ValueError"
    assert "spark_udfs.py" in user.traceback and "raise ValueError" in user.traceback
    assert "quiver/worker" not in user.traceback  # quiver's own frames are trimmed
    call.finish()  # Cancel-after-Finish: the error's terminator is CancelResponse
    call.cancel()
    assert call.recv_control("cancel").metrics["batches_in"] == "3"
    assert call.ended()


def test_wrong_result_length_is_a_worker_error(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("wrong_length"))
    call.send_batch(int_batch(1, 2, 3))
    kind, error = error_kind(call.recv_control("error").error)
    assert kind == "worker" and "wrong_length" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_init_error_then_cancel(shared: SparkWorker):
    call = shared.call()
    init = call.init(shared.ref("no_such_function"))
    kind, error = error_kind(init.error)
    assert kind == "worker" and "no_such_function" in error.message
    assert not init.HasField("data")
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_unknown_payload_format_names_the_accepted_ones(shared: SparkWorker):
    call = shared.call()
    kind, error = error_kind(call.init("x", payload_format="java/serialized").error)
    assert (
        kind == "worker" and "python/ref" in error.message and "python/cloudpickle" in error.message
    )
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_version_99_answered_once_after_the_last_chunk(shared: SparkWorker):
    call = shared.call()
    udf = spb.UdfPayload(payload=b"", format="python/ref")
    call.send(
        init=spb.Init(
            protocol_version=99,
            data_format=common_pb2.ARROW,
            udf=udf,
            is_chunking_payload=True,
            input_schema=schema_bytes(INT_SCHEMA),
        )
    )
    call.send(payload=spb.PayloadChunk(data=b"a" * 10))
    with pytest.raises(queue.Empty):  # nothing is answered before the last chunk
        call.recv(timeout=0.3)
    call.send(payload=spb.PayloadChunk(data=b"b", last=True))
    kind, error = error_kind(call.recv_control("init").error)
    assert kind == "protocol" and "99" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


@pytest.mark.parametrize("data_format", [common_pb2.UDF_WORKER_DATA_FORMAT_UNSPECIFIED, 7])
def test_data_format_other_than_arrow_is_a_protocol_error(shared: SparkWorker, data_format: int):
    call = shared.call()
    init = call.init(shared.ref("plus_one"), data_format=data_format)
    kind, error = error_kind(init.error)
    assert kind == "protocol" and "ARROW" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [("payload_crc32", 1234, "CRC-32"), ("payload_size", 3, "payload_size")],
)
def test_payload_crc_or_size_mismatch_is_a_protocol_error(
    shared: SparkWorker, field: str, value: int, words: str
):
    call = shared.call()
    init = call.init(shared.ref("plus_one"), udf={field: value})
    kind, error = error_kind(init.error)
    assert kind == "protocol" and words in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_missing_input_schema_is_a_protocol_error(shared: SparkWorker):
    call = shared.call()
    kind, error = error_kind(call.init(shared.ref("plus_one"), schema=None).error)
    assert kind == "protocol" and "input_schema" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_output_schema_disagreeing_with_the_udf_is_a_worker_error(shared: SparkWorker):
    call = shared.call()
    output = schema_bytes(pa.schema([("y", pa.string())]))
    kind, error = error_kind(call.init(shared.ref("plus_one"), output_schema=output).error)
    assert kind == "worker" and "string" in error.message and "int64" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_unknown_eval_type_is_a_worker_error(shared: SparkWorker):
    call = shared.call()
    init = call.init(shared.ref("plus_one"), udf={"eval_type": "GROUPED_MAP"})
    kind, error = error_kind(init.error)
    assert kind == "worker" and "SCALAR_ARROW" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_batch_not_matching_input_schema_is_a_protocol_error(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("plus_one"))
    call.send_batch(pa.record_batch({"x": pa.array(["not", "ints"])}))
    kind, error = error_kind(call.recv_control("error").error)
    assert kind == "protocol" and "input_schema" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_undecodable_data_is_a_protocol_error(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("plus_one"))
    call.send_data(b"\x00garbage")
    kind, _ = error_kind(call.recv_control("error").error)
    assert kind == "protocol"
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_a_stream_without_a_record_batch_is_a_protocol_error(shared: SparkWorker):
    sink = pa.BufferOutputStream()
    pa.ipc.new_stream(sink, INT_SCHEMA).close()  # the schema and the end of stream only
    call = shared.call()
    call.init(shared.ref("plus_one"))
    call.send_data(sink.getvalue().to_pybytes())
    kind, error = error_kind(call.recv_control("error").error)
    assert kind == "protocol" and "no record batch" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_data_before_init_response_is_a_protocol_error_in_init_response(shared: SparkWorker):
    call = shared.call()
    call.send_batch(int_batch(1))
    kind, error = error_kind(call.recv_control("init").error)
    assert kind == "protocol" and "before InitResponse" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_second_init_is_a_protocol_error(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("plus_one"))
    call.send(init=spb.Init(data_format=common_pb2.ARROW))
    kind, error = error_kind(call.recv_control("error").error)
    assert kind == "protocol" and "second Init" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_payload_chunk_without_chunking_is_a_protocol_error(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("plus_one"))
    call.send(payload=spb.PayloadChunk(data=b"more", last=True))
    kind, error = error_kind(call.recv_control("error").error)
    assert kind == "protocol" and "is_chunking_payload" in error.message
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


# ---- cancel and half-close ----


def test_cancel_before_init_is_answered_alone(shared: SparkWorker):
    call = shared.call()
    call.cancel()
    assert call.recv_control("cancel").metrics["batches_in"] == "0"
    assert call.ended()


def test_cancel_while_chunks_arrive_is_answered_without_init_response(shared: SparkWorker):
    call = shared.call()
    udf = spb.UdfPayload(format="python/ref")
    call.send(init=spb.Init(data_format=common_pb2.ARROW, udf=udf, is_chunking_payload=True))
    call.send(payload=spb.PayloadChunk(data=b"abc"))
    call.cancel()
    call.recv_control("cancel")
    assert call.ended()


def test_cancel_mid_stream_drops_the_queued_batches(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("nap"))
    call.send_batch(int_batch(400))  # runs while the rest queue up behind it
    for _ in range(20):
        call.send_batch(int_batch(200))
    call.cancel()
    answered = 0
    while True:
        message = call.recv()
        if message.HasField("data"):
            answered += 1
            continue
        assert message.control.WhichOneof("control") == "cancel"
        break
    assert answered < 5, f"{answered} batches ran although a Cancel waited behind them"
    assert message.control.cancel.metrics["batches_in"] == "21"
    assert call.ended()


def test_cancel_after_finish_before_finish_response_gets_cancel_response(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("nap"))
    call.send_batch(int_batch(300))
    call.finish()
    call.cancel()
    message = call.recv()
    # The batch is answered when it was already running; a Cancel the worker sees before the
    # batch starts drops it (a busy machine can delay the batch that long). Either way, the
    # Finish gets no FinishResponse: the answer is a CancelResponse.
    if message.HasField("data"):
        message = call.recv()
    assert message.control.WhichOneof("control") == "cancel"
    assert call.ended()


def test_half_close_without_finish_is_cancel_with_a_protocol_error(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("plus_one"))
    call.send_batch(int_batch(1))
    call.recv_batch()
    call.half_close()
    cancel = call.recv_control("cancel")
    kind, error = error_kind(cancel.error)
    assert kind == "protocol" and "without Finish or Cancel" in error.message
    assert call.ended()


# ---- Manage ----


def test_heartbeat_is_answered_while_a_udf_sleeps(shared: SparkWorker):
    call = shared.call()
    call.init(shared.ref("nap"))
    call.send_batch(int_batch(1500))
    time.sleep(0.2)
    metrics = shared.heartbeat(timeout=1.0)
    with pytest.raises(queue.Empty):  # answered while the UDF still sleeps
        call.recv(timeout=0)
    assert metrics["sessions_active"] == "1"
    assert metrics["pid"] == str(shared.process.pid)
    assert call.recv_batch().column(0).to_pylist() == [1500]
    call.finish()
    call.recv_control("finish")
    assert call.ended()


def test_heartbeat_totals_grow_with_each_stream(shared: SparkWorker):
    before = shared.heartbeat()
    call = shared.call()
    call.init(shared.ref("plus_one"))
    call.send_batch(int_batch(1, 2, 3))
    call.recv_batch()
    call.finish()
    call.recv_control("finish")
    assert call.ended()
    after = shared.heartbeat()
    assert int(after["rows_in"]) - int(before["rows_in"]) == 3
    assert int(after["batches_out"]) - int(before["batches_out"]) == 1
    assert after["sessions_active"] == "0"
