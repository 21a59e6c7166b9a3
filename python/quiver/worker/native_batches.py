"""The socket transports' per-batch path in native code (the extension ``quiver._worker_loop``).

Once an execution's first batch has been decoded here, the worker hands its socket to a loop in
C++ (cpp/quiver/python/worker_loop.h) that reads the next Data frames, decodes and fully
validates each batch, calls back once per batch with it (through the Arrow C data interface),
and encodes and writes the result frame: Python runs only the UDFs, and the frame, header and
IPC work of a batch costs no interpreter time. The loop returns to the Python worker the bytes of
whatever else it reads (a control frame, a body of another schema or one that does not decode, a
broken frame, the end of the stream), and the Python worker handles them as it always did: the
bytes on the wire, the errors and their texts are the same either way.

What stays in Python: Init, payload chunks, Finish, Cancel, heartbeats, errors, shutdown, the
first batch of an execution, shm's ShmData batches (large ones, read in place), results larger
than the loop sends inline, and UDFs that are not called once per batch on their own (async,
row and iterator UDFs, the grouped and table kinds). The loop does not look for a Cancel behind a
batch, which the protocol allows ("a worker need not read ahead").

``QUIVER_WORKER_NATIVE=0`` keeps every batch in Python; without the compiled extension (a worker
environment that has quiver's Python code only) the worker runs that way too.
"""

from __future__ import annotations

import os
import weakref
from types import ModuleType
from typing import TYPE_CHECKING

import pyarrow as pa

from quiver.transport.base import ChannelClosed
from quiver.worker.batch_codec import MAX_RESULT_BYTES
from quiver.worker.errors import WorkerFailure

if TYPE_CHECKING:
    from quiver.worker.execution import Execution
    from quiver.worker.state_machine import WorkerStateMachine

NATIVE_ENV = "QUIVER_WORKER_NATIVE"
# Results whose buffers are larger than this go the Python way over shm, which copies them into
# the output arena (transport/shm.py); smaller ones go inline on the socket, as Python sends them.
SHM_NATIVE_RESULT_BYTES = 32 << 10
# Over uds every result the loop encodes fits one frame below this; larger ones go the Python way,
# which refuses a result over MAX_RESULT_BYTES with a WorkerError.
UDS_NATIVE_RESULT_BYTES = 1 << 30


try:  # imported here, so that the fork server's workers find it loaded (forkserver PRELOAD)
    from quiver import _worker_loop as _EXTENSION
except ImportError:  # a worker environment with quiver's Python code only
    _EXTENSION = None


def load_extension() -> ModuleType | None:
    """Return the native loop's module, or None when it is switched off or not built."""
    if os.environ.get(NATIVE_ENV, "").strip() == "0":
        return None
    return _EXTENSION


class NativeBatches:
    """Serve the batches of a socket conversation in the native loop while nothing else waits."""

    def __init__(self, extension: ModuleType, machine: WorkerStateMachine) -> None:
        """Serve for ``machine``, whose sink is a socket connection and whose lookahead is the
        SocketInbox reading that socket."""
        self._extension = extension
        self._machine = machine
        self._sink = machine.sink
        self._inbox = machine.lookahead
        self._loop = None
        # The execution (weakly: it ends with its Finish) and schema message the loop serves.
        self._loop_for: tuple[weakref.ref[Execution], bytes] | None = None
        self._input_schema: pa.Schema | None = None
        self._result_limit = UDS_NATIVE_RESULT_BYTES

    @classmethod
    def attach(cls, machine: WorkerStateMachine) -> NativeBatches | None:
        """Return the native path of ``machine``, or None when it cannot have one (grpc, the
        extension missing or switched off)."""
        sock = getattr(machine.sink, "sock", None)
        if sock is None or not hasattr(machine.lookahead, "give_back"):
            return None
        extension = load_extension()
        return None if extension is None else cls(extension, machine)

    def serve(self) -> None:
        """Run batches natively until something else arrives, when the conversation allows it:
        an execution running scalar UDFs whose batch schema is known, nothing read ahead."""
        machine = self._machine
        execution = machine.execution
        if not machine.running or execution is None or not self._inbox.at_rest():
            return
        known = execution.native_schema()
        if known is None:
            return
        loop = self._loop_of(execution, *known)
        try:
            unread, read_errno, write_errno, unanswered = loop.serve(
                self._run_batch, self._send_elsewhere
            )
        finally:
            execution.metrics.codec_nanos += loop.take_codec_nanos()
        if write_errno:
            raise ChannelClosed(f"cannot write to the engine's socket: {_os_error(write_errno)}")
        if unanswered is not None:
            sequence, reason = unanswered
            failure = WorkerFailure(
                f"the worker could not send the result of batch {sequence}: {reason}"
            )
            machine.fail(failure, sequence)
        self._inbox.give_back(unread, _os_error(read_errno) if read_errno else None)

    def _loop_of(self, execution: Execution, message: bytes, schema: pa.Schema):  # noqa: ANN202
        """Return the loop for this execution's batch schema (made once per execution)."""
        served = self._loop_for
        if served is None or served[0]() is not execution or served[1] != message:
            assert execution.result_schema is not None
            shm = getattr(self._sink, "arena", None) is not None
            self._loop = self._extension.make_loop(
                self._sink.sock.fileno(),
                message,
                execution.result_schema.serialize().to_pybytes(),
                # shm sends a result this large through the output arena (transport/shm.py).
                _shm_inline_below() - 1 if shm else MAX_RESULT_BYTES,
            )
            self._loop_for = (weakref.ref(execution), message)
            self._machine.log.debug(
                "the native batch loop runs this execution's batches of %d column(s)", len(schema)
            )
            self._input_schema = schema
            self._result_limit = SHM_NATIVE_RESULT_BYTES if shm else UDS_NATIVE_RESULT_BYTES
        return self._loop

    def _run_batch(self, sequence: int, in_address: int, out_address: int) -> int:
        """Answer one batch the loop decoded: export the result for it to send (SEND_RESULT),
        or say it was answered here (ANSWERED), or that the loop must stop (LEAVE)."""
        extension = self._extension
        machine = self._machine
        execution = machine.execution
        if not machine.running or execution is None:
            return extension.LEAVE
        batch = pa.RecordBatch._import_from_c(in_address, self._input_schema)
        result = machine.run_decoded(sequence, batch)
        if result is None:
            return extension.LEAVE
        if result.get_total_buffer_size() > self._result_limit:
            machine.send_result(sequence, batch, result)
            return extension.ANSWERED if machine.running else extension.LEAVE
        execution.count_batch(batch, result)
        result._export_to_c(out_address)
        return extension.SEND_RESULT

    def _send_elsewhere(self, sequence: int, body: bytes) -> None:
        """Send a result the loop encoded but leaves to the connection (shm's large ones)."""
        self._sink.send_data(sequence, [body])


def _shm_inline_below() -> int:
    """Return the size from which shm sends a result through the output arena."""
    from quiver.transport.shm import INLINE_BELOW_BYTES

    return INLINE_BELOW_BYTES


def _os_error(number: int) -> OSError:
    """Return the OSError of an errno, worded as Python's socket calls word it."""
    return OSError(number, os.strerror(number))
