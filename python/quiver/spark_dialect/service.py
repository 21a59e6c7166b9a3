"""Spark's ``UdfWorker`` service: ``Execute`` streams side by side, and ``Manage``.

Each Execute stream holds a thread of the server's pool for its life (:mod:`.stream`); the pool
keeps spare threads so that Manage (heartbeats, shutdown) is answered however many streams run,
as the service's contract demands. docs/spark-protocol.md, section 5.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from typing import NoReturn

import grpc

from quiver.spark_dialect.codec import OutgoingData, SparkItem, decode_request, encode_response
from quiver.spark_dialect.messages import SERVICE_NAME, spb
from quiver.spark_dialect.stream import SHUTTING_DOWN, SUMMED_KEYS, ExecuteStream
from quiver.transport.grpc.service import (
    CANCEL_WAIT_SECONDS,
    MAX_EXECUTIONS,
    worker_service_handler,
)
from quiver.worker.execution import peak_rss_bytes


class SparkWorkerService:
    """Serve Execute and Manage; know the open streams and the worker-wide totals."""

    def __init__(self, log: logging.Logger) -> None:
        """Start with no stream open."""
        self.log = log
        self._cond = threading.Condition()
        self._streams: set[ExecuteStream] = set()
        self._ended_totals = dict.fromkeys(SUMMED_KEYS, 0)
        self._closing = False
        self.shutdown_requested = threading.Event()

    def handler(self) -> grpc.GenericRpcHandler:
        """Return the service's handler, with the hand-written codec for Execute."""
        return worker_service_handler(
            SERVICE_NAME,
            execute=(self.execute, decode_request, encode_response),
            manage=(self.manage, spb.WorkerRequest, spb.WorkerResponse),
        )

    # ---- calls ----

    def execute(
        self, requests: Iterator[SparkItem], context: grpc.ServicerContext
    ) -> Iterator[spb.UdfResponse | OutgoingData]:
        """Serve one Execute stream."""
        stream = ExecuteStream(requests, context, self.log, self._stream_ended)
        with self._cond:
            if self._closing:
                problem = (grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
            elif len(self._streams) >= MAX_EXECUTIONS:
                problem = (
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the worker serves at most {MAX_EXECUTIONS} Execute streams at once",
                )
            else:
                problem = None
                self._streams.add(stream)
        if problem is not None:
            stream.inbox.close()
            _abort(context, *problem)
        yield from stream.run()

    def manage(
        self, request: spb.WorkerRequest, context: grpc.ServicerContext
    ) -> spb.WorkerResponse:
        """Answer a heartbeat with the worker's metrics, or shut the worker down."""
        kind = request.WhichOneof("manage")
        if kind == "heartbeat":
            return spb.WorkerResponse(heartbeat=spb.HeartbeatResponse(metrics=self.metrics()))
        if kind == "shutdown":
            settled = self.shut_down(request.shutdown.cancel_sessions, request.shutdown.reason)
            # The process stops only once the engine has its answer (or gave up on it).
            if not context.add_callback(self.shutdown_requested.set):
                self.shutdown_requested.set()
            return spb.WorkerResponse(shutdown=spb.ShutdownResponse(sessions_settled=settled))
        _abort(
            context,
            grpc.StatusCode.INVALID_ARGUMENT,
            "a WorkerRequest holds no request (unknown or empty oneof)",
        )

    # ---- shutdown ----

    def shut_down(self, cancel_sessions: bool, reason: str = "") -> bool:
        """Refuse new streams; cancel the open ones when asked, waiting for them (bounded).

        Returns whether no stream is open any more.
        """
        with self._cond:
            self._closing = True
            streams = list(self._streams)
        self.log.info(
            "Shutdown%s: %s %d open stream(s)",
            f" ({reason})" if reason else "",
            "cancelling" if cancel_sessions else "letting finish",
            len(streams),
        )
        if not cancel_sessions:
            return not streams
        for stream in streams:
            stream.request_stop(SHUTTING_DOWN)
        settled = self.wait_for_streams(CANCEL_WAIT_SECONDS)
        if not settled:
            self.log.warning(
                "open streams did not stop within %.0f s (a UDF busy with a batch); exiting anyway",
                CANCEL_WAIT_SECONDS,
            )
        return settled

    def cancel_all(self, reason: str) -> None:
        """Refuse new streams and ask the open ones to end (SIGTERM, the engine gone)."""
        with self._cond:
            self._closing = True
            streams = list(self._streams)
        for stream in streams:
            stream.request_stop(reason)

    def wait_for_streams(self, timeout: float | None) -> bool:
        """Wait until no stream is open; return whether that happened in time."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._streams, timeout)

    def open_streams(self) -> int:
        """Count the open Execute streams."""
        with self._cond:
            return len(self._streams)

    # ---- metrics ----

    def metrics(self) -> dict[str, str]:
        """Return the worker-wide figures: pid, open streams, totals, peak memory."""
        with self._cond:
            totals = dict(self._ended_totals)
            streams = list(self._streams)
        for stream in streams:
            for key, value in stream.metrics().items():
                totals[key] += value
        figures = {
            "pid": os.getpid(),
            "sessions_active": len(streams),
            **totals,
            "peak_rss_bytes": peak_rss_bytes(),
        }
        return {key: str(value) for key, value in figures.items()}

    def _stream_ended(self, stream: ExecuteStream) -> None:
        """Move an ended stream's figures into the totals."""
        figures = stream.metrics()
        with self._cond:
            if stream in self._streams:
                self._streams.discard(stream)
                for key in SUMMED_KEYS:
                    self._ended_totals[key] += figures[key]
            self._cond.notify_all()


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, details: str) -> NoReturn:
    """End the call with a status (``context.abort`` raises)."""
    context.abort(code, details)
    raise AssertionError("unreachable: grpc.ServicerContext.abort raises")
