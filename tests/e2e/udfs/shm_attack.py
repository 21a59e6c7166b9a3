"""A UDF that attacks its own results over the shm transport, as any UDF code could.

It finds the worker's connection with `gc` and, each time a result is handed over in the output
arena, starts a thread that does for 2 s what $QUIVER_SHM_ATTACK says: `rewrite` keeps writing
0xff over the region's first bytes; `punch` punches a hole over it (`MADV_REMOVE`, as
`fallocate`'s PUNCH_HOLE). The values it returns are its input's, unchanged.
"""

import gc
import mmap
import os
import threading
import time

import pyarrow as pa

import quiver
from quiver.transport import shm

PAGE = mmap.PAGESIZE


def _attack(conn: shm.ShmConnection, mode: str, offset: int, length: int) -> None:
    """Change the handed-over region [offset, offset + length) for 2 s."""
    deadline = time.monotonic() + 2
    start = offset // PAGE * PAGE
    end = -(-(offset + length) // PAGE) * PAGE
    while time.monotonic() < deadline:
        if mode == "rewrite":
            conn.output[offset : offset + 16] = b"\xff" * 16
        else:
            conn._maps[1].madvise(mmap.MADV_REMOVE, start, end - start)
        time.sleep(0.001)


def _hijack(conn: shm.ShmConnection, mode: str) -> None:
    """Wrap the connection's messages: every result handed over is attacked."""
    honest = conn.send_message

    def send_message(message) -> None:
        honest(message)
        if message.WhichOneof("kind") == "shm_data":
            region = message.shm_data.region
            arguments = (conn, mode, region.offset, region.length)
            threading.Thread(target=_attack, args=arguments, daemon=True).start()

    conn.send_message = send_message


@quiver.udf(returns="string")
def echo_and_attack(x: pa.Array) -> pa.Array:
    """Return `x`; on the first call, hijack the shm connection's result hand-over."""
    for candidate in gc.get_objects():
        if isinstance(candidate, shm.ShmConnection) and not hasattr(candidate, "_hijacked"):
            candidate._hijacked = True
            _hijack(candidate, os.environ.get("QUIVER_SHM_ATTACK", "rewrite"))
    return x
