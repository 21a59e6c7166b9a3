"""A UDF that attacks its own results over the shm transport, as any UDF code could.

It finds the worker's connection with `gc`, makes every result travel in shared memory, and then,
for each result, does what $QUIVER_SHM_ATTACK says: `writable` keeps the result's memfd mapped
writable and rewrites it from a thread while the engine reads it; `rewrite`, `punch` and `shrink`
keep a descriptor of the handed-over memfd and try to rewrite it, punch holes in it or shrink it
until the kernel refuses. The values it returns are its input's, unchanged.
"""

import ctypes
import gc
import mmap
import os
import threading
import time

import pyarrow as pa

import quiver
from quiver.transport import shm

_LIBC = ctypes.CDLL(None, use_errno=True)


def _attack(fd: int, mode: str) -> None:
    """Try to change the handed-over memfd until the kernel refuses (or 5 s)."""
    length = os.fstat(fd).st_size
    deadline = time.monotonic() + 5
    try:
        while time.monotonic() < deadline:
            if mode == "rewrite":
                try:
                    os.pwrite(fd, b"\xff" * 64, 0)
                except OSError:
                    return
            elif mode == "punch":
                if _LIBC.fallocate(fd, 0x03, ctypes.c_long(0), ctypes.c_long(length)) != 0:
                    return
            elif mode == "shrink":
                try:
                    os.ftruncate(fd, 8)
                except OSError:
                    return
            time.sleep(0.0005)
    finally:
        os.close(fd)


def _keep_rewriting(mapping: mmap.mmap) -> None:
    """Rewrite a mapped result for as long as the worker lives."""
    while True:
        mapping[0:64] = os.urandom(64)
        time.sleep(0.0005)


def _hijack(conn: shm.ShmConnection, mode: str) -> None:
    """Wrap the connection's hand-over of result memfds with the attack."""
    honest = conn._send_with_descriptor
    shm.INLINE_BELOW = 0  # every result in a memfd

    def send(frame, fd: int) -> None:
        if mode == "writable":
            mapping = mmap.mmap(fd, os.fstat(fd).st_size, flags=mmap.MAP_SHARED)
            threading.Thread(target=_keep_rewriting, args=(mapping,), daemon=True).start()
            honest(frame, fd)
            return
        kept = os.dup(fd)
        honest(frame, fd)
        threading.Thread(target=_attack, args=(kept, mode), daemon=True).start()

    conn._send_with_descriptor = send


@quiver.udf(returns="string")
def echo_and_attack(x: pa.Array) -> pa.Array:
    """Return `x`; on the first call, hijack the shm connection's result hand-over."""
    for candidate in gc.get_objects():
        if isinstance(candidate, shm.ShmConnection) and not hasattr(candidate, "_hijacked"):
            candidate._hijacked = True
            _hijack(candidate, os.environ.get("QUIVER_SHM_ATTACK", "rewrite"))
    return x
