"""A Spark-dialect worker that breaks one rule of docs/spark-protocol.md, for the engine to catch.

Started by the engine as `spark_faulty_worker.py FAULT --id ID --connection PATH`. It serves
Spark's UdfWorker service on PATH and answers like a correct worker of the identity function,
except for FAULT:

  no_terminator     ends the Execute stream after Finish without FinishResponse
  data_before_init  sends a DataResponse before its InitResponse
  wrong_rows        answers every batch with one row more than it got
  bad_ipc           answers every batch with bytes that are not Arrow IPC
  wrong_name        names its result column other than udf.name
  extra_answer      answers every batch twice
  no_pid            answers heartbeats without metrics["pid"]

A real worker does none of this; these faults cannot be produced with one.
"""

from __future__ import annotations

import os
import sys
from concurrent import futures

import grpc
import pyarrow as pa

from quiver.spark_dialect.messages import SERVICE_NAME, spb


def schema_bytes(schema: pa.Schema) -> bytes:
    return schema.serialize().to_pybytes()


def stream_bytes(batch: pa.RecordBatch) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


def control(**fields: object) -> spb.UdfResponse:
    return spb.UdfResponse(control=spb.UdfControlResponse(**fields))


class FaultyWorker:
    def __init__(self, fault: str) -> None:
        self.fault = fault

    def execute(self, requests, context):
        name = "result"
        for request in requests:
            if request.HasField("data"):
                batch = pa.ipc.open_stream(request.data.data).read_next_batch()
                column = batch.column(0)
                if self.fault == "wrong_rows":
                    column = pa.concat_arrays([column, column.slice(0, 1)])
                answer = pa.record_batch([column], names=[name])
                data = b"not arrow" if self.fault == "bad_ipc" else stream_bytes(answer)
                yield spb.UdfResponse(data=spb.DataResponse(data=data))
                if self.fault == "extra_answer":
                    yield spb.UdfResponse(data=spb.DataResponse(data=data))
                continue
            which = request.control.WhichOneof("control")
            if which == "init":
                init = request.control.init
                name = init.udf.name
                field = pa.ipc.read_schema(pa.py_buffer(init.input_schema)).field(0)
                if self.fault == "data_before_init":
                    empty = pa.record_batch([pa.array([], field.type)], names=[name])
                    yield spb.UdfResponse(data=spb.DataResponse(data=stream_bytes(empty)))
                shown = "other" if self.fault == "wrong_name" else name
                result = schema_bytes(pa.schema([pa.field(shown, field.type)]))
                yield control(init=spb.InitResponse(data=result))
            elif which == "finish":
                if self.fault == "no_terminator":
                    return
                yield control(finish=spb.FinishResponse())
                return
            elif which == "cancel":
                yield control(cancel=spb.CancelResponse())
                return

    def manage(self, request, context):
        if request.WhichOneof("manage") == "shutdown":
            return spb.WorkerResponse(shutdown=spb.ShutdownResponse(sessions_settled=True))
        metrics = {} if self.fault == "no_pid" else {"pid": str(os.getpid())}
        return spb.WorkerResponse(heartbeat=spb.HeartbeatResponse(metrics=metrics))


def main(argv: list[str]) -> int:
    fault = argv[0]
    args = dict(zip(argv[1::2], argv[2::2], strict=False))
    worker = FaultyWorker(fault)
    handlers = {
        "Execute": grpc.stream_stream_rpc_method_handler(
            worker.execute,
            request_deserializer=spb.UdfRequest.FromString,
            response_serializer=spb.UdfResponse.SerializeToString,
        ),
        "Manage": grpc.unary_unary_rpc_method_handler(
            worker.manage,
            request_deserializer=spb.WorkerRequest.FromString,
            response_serializer=spb.WorkerResponse.SerializeToString,
        ),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)])
    server.add_insecure_port("unix:" + args["--connection"])
    server.start()
    server.wait_for_termination()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
