"""The real Python worker over the shm transport, except that its results lie or are attacked.

The engine starts it as `PYTHON -m quiver.worker ...` (PYTHON is a wrapper script that runs this
file). It serves as `python -m quiver.worker` does, but each result goes through
`ShmConnection.send_data` as $QUIVER_FAKE_SHM says:

- `past-end`, `wrap`, `misaligned`, `empty`: the region named is outside the result's memfd, makes
  offset + length wrap around, is not 8-byte aligned, or is empty;
- `half`: the whole stream is named but its second half is 0xff, as if the worker had died while
  writing and its frame had been sent anyway;
- `no-memfd`: the ShmData frame comes without its memfd;
- `writable`: the memfd is handed over while the worker still maps it writable, and a thread
  keeps rewriting it;
- `rewrite`, `punch`, `shrink`: the memfd is handed over honestly, then the worker keeps a
  descriptor and tries, until the kernel refuses, to rewrite it (write and a writable mapping),
  to punch holes in it (fallocate), or to shrink it (ftruncate); each refusal is logged as
  "refused: MODE: ERROR";
- `seed:N`: one of the above or a few flipped bytes of the stream, chosen by seed N.

Every result goes through shared memory, however small.
"""

from __future__ import annotations

import array
import ctypes
import mmap
import os
import random
import socket
import sys
import threading
import time

from quiver._proto import pb
from quiver.protocol.framing import encode_control_frame
from quiver.transport import shm
from quiver.transport.uds import send_frame
from quiver.worker.__main__ import main

_LIBC = ctypes.CDLL(None, use_errno=True)
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 0x01, 0x02
ATTACKS = ["past-end", "wrap", "misaligned", "empty", "half", "no-memfd", "flip", "flip"]
ATTACKS += ["writable", "rewrite", "punch", "shrink"]


def _memfd(body) -> tuple[int, int]:
    """Write the stream into a new memfd, as the honest worker does; return (fd, length)."""
    fd = os.memfd_create("fake-result", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    views = [memoryview(part).cast("B") for part in body]
    shm._write_all(fd, views)
    return fd, sum(view.nbytes for view in views)


def _send(conn: shm.ShmConnection, sequence: int, offset: int, length: int, fd: int | None):
    """Send ShmData naming [offset, offset + length) of `fd` (None: no descriptor)."""
    region = pb.ShmRegion(offset=offset, length=length)
    message = pb.WorkerMessage(shm_data=pb.ShmData(sequence=sequence, region=region))
    frame = b"".join(bytes(p) for p in encode_control_frame(message.SerializeToString()))
    if fd is None:
        send_frame(conn.sock, [frame])
        return
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
    sent = conn.sock.sendmsg([frame], rights)
    if sent < len(frame):
        send_frame(conn.sock, [frame[sent:]])


def _attack_once(fd: int, mode: str, length: int) -> None:
    """Try the attack once; raises OSError when the kernel refuses it."""
    if mode == "rewrite":
        os.pwrite(fd, b"\xff" * min(length, 4096), 0)
        mapping = mmap.mmap(fd, length, flags=mmap.MAP_SHARED, prot=mmap.PROT_WRITE)
        mapping[0:8] = b"\xee" * 8
        mapping.close()
    elif mode == "punch":
        flags = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
        if _LIBC.fallocate(fd, flags, ctypes.c_long(0), ctypes.c_long(length)) != 0:
            error = ctypes.get_errno()
            raise OSError(error, os.strerror(error))
    elif mode == "shrink":
        os.ftruncate(fd, 8)


def _attack_until_refused(fd: int, mode: str, length: int) -> None:
    """Repeat the attack until the kernel refuses it (the engine sealed the memfd) or 5 s."""
    deadline = time.monotonic() + 5
    try:
        while time.monotonic() < deadline:
            try:
                _attack_once(fd, mode, length)
            except OSError as exc:
                print(f"refused: {mode}: {exc}", file=sys.stderr, flush=True)
                return
            time.sleep(0.0005)
        print(f"never refused: {mode}", file=sys.stderr, flush=True)
    finally:
        os.close(fd)


def _keep_rewriting(mapping: mmap.mmap) -> None:
    """Rewrite a mapped result for as long as the process lives."""
    while True:
        mapping[0:16] = os.urandom(16)
        time.sleep(0.0005)


def lying_send(conn: shm.ShmConnection, sequence: int, body) -> None:
    """Send the result of `sequence` the way $QUIVER_FAKE_SHM asks for."""
    mode = os.environ.get("QUIVER_FAKE_SHM", "past-end")
    rng = random.Random(f"{mode}/{sequence}")
    if mode.startswith("seed:"):
        mode = rng.choice(ATTACKS)
    fd, length = _memfd(body)
    if mode == "no-memfd":
        os.close(fd)
        _send(conn, sequence, 0, length, None)
        return
    if mode == "writable":
        mapping = mmap.mmap(fd, length, flags=mmap.MAP_SHARED)
        threading.Thread(target=_keep_rewriting, args=(mapping,), daemon=True).start()
        _send(conn, sequence, 0, length, fd)
        return  # the descriptor stays open too
    if mode in ("rewrite", "punch", "shrink"):
        _send(conn, sequence, 0, length, fd)
        _attack_until_refused(fd, mode, length)
        return
    offset = 0
    if mode == "past-end":
        offset, length = length - 8 - length % 8, 4096
    elif mode == "wrap":
        offset, length = 64, 2**64 - 32
    elif mode == "misaligned":
        offset = 4
    elif mode == "empty":
        length = 0
    elif mode == "half":
        os.pwrite(fd, b"\xff" * (length - length // 2), length // 2)
    elif mode == "flip":
        for _ in range(3):
            position = rng.randrange(length)
            byte = os.pread(fd, 1, position)[0] ^ (1 << rng.randrange(8))
            os.pwrite(fd, bytes([byte]), position)
    try:
        _send(conn, sequence, offset, length, fd)
    finally:
        os.close(fd)


shm.ShmConnection.send_data = lying_send  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.argv[0] = "quiver.worker"
    if sys.argv[1:2] == ["-m"]:  # started as PYTHON -m quiver.worker ARGS
        del sys.argv[1:3]
    main()
