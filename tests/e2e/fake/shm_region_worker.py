"""The real Python worker over the shm transport, except that its results lie about their region.

The engine starts it as `PYTHON -m quiver.worker ...` (PYTHON is a wrapper script that runs this
file). It serves as `python -m quiver.worker` does, but each result goes through
`ShmConnection.send_data` as $QUIVER_FAKE_SHM says:

- `past-end`, `wrap`, `misaligned`, `empty`: the region named is outside the output arena, makes
  offset + length wrap around, is not 8-byte aligned, or is empty; the bytes are not written;
- `half`: the whole region is named but only half of the stream was written (the rest is 0xff),
  as if the worker had died while writing and its frame had been sent anyway;
- `rewrite`, `punch`, `shrink`: the result is handed over honestly, then the worker, for 2 s,
  keeps rewriting the region's first bytes, punches a hole in it (`fallocate`), or tries to
  shrink the output arena (`ftruncate`, which its seal refuses);
- `seed:N`: one of the above or a few flipped bytes of the written stream, chosen by seed N.
"""

from __future__ import annotations

import ctypes
import os
import random
import sys
import threading
import time

from quiver._proto import pb
from quiver.transport import shm
from quiver.worker.__main__ import main

_honest_send = shm.ShmConnection.send_data
_honest_map = shm.ShmConnection._map
_LIBC = ctypes.CDLL(None, use_errno=True)
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE = 0x01, 0x02
_kept_fds: list[int] = []  # the arenas' memfds, kept open to attack them


def keeping_map(conn: shm.ShmConnection, fd: int, size: int, writable: bool):
    """Map an arena as the worker does, keeping a descriptor of it."""
    _kept_fds.append(os.dup(fd))
    return _honest_map(conn, fd, size, writable)


def _attack(conn: shm.ShmConnection, mode: str, offset: int, length: int) -> None:
    """Attack the handed-over region [offset, offset + length) for 2 s."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            if mode == "rewrite":
                conn.output[offset : offset + 16] = b"\xff" * 16
            elif mode == "punch":
                flags = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE
                _LIBC.fallocate(_kept_fds[-1], flags, ctypes.c_long(offset), ctypes.c_long(length))
            else:
                os.ftruncate(_kept_fds[-1], 4096)
        except OSError as exc:
            print(f"refused: {mode}: {exc}", file=sys.stderr, flush=True)
            return
        time.sleep(0.001)


def _region(conn: shm.ShmConnection, sequence: int, offset: int, length: int) -> None:
    """Send a ShmData naming [offset, offset + length), whatever lies there."""
    region = pb.ShmRegion(offset=offset, length=length)
    conn.send_message(pb.WorkerMessage(shm_data=pb.ShmData(sequence=sequence, region=region)))


def _write(conn: shm.ShmConnection, body, offset: int) -> int:
    """Write the result's stream at `offset`; return its length."""
    assert conn.output is not None
    position = offset
    for part in body:
        view = memoryview(part).cast("B")
        conn.output[position : position + view.nbytes] = view
        position += view.nbytes
    return position - offset


def lying_send(conn: shm.ShmConnection, sequence: int, body) -> None:
    """Send the result of `sequence` with the lie $QUIVER_FAKE_SHM asks for."""
    mode = os.environ.get("QUIVER_FAKE_SHM", "past-end")
    rng = random.Random(f"{mode}/{sequence}")
    if mode.startswith("seed:"):
        modes = ["past-end", "wrap", "misaligned", "empty", "half", "flip", "flip"]
        mode = rng.choice([*modes, "rewrite", "punch", "shrink"])
    assert conn.output is not None
    size = conn.output.nbytes
    if mode == "past-end":
        _region(conn, sequence, size - 64, 4096)
    elif mode == "wrap":
        _region(conn, sequence, 64, 2**64 - 32)
    elif mode == "misaligned":
        _region(conn, sequence, 4, 1024)
    elif mode == "empty":
        _region(conn, sequence, 0, 0)
    elif mode == "half":
        length = _write(conn, body, 0)
        conn.output[length // 2 : length] = b"\xff" * (length - length // 2)
        _region(conn, sequence, 0, length)
    elif mode == "flip":
        offset = 64 * 1024 * (sequence % 8)
        length = _write(conn, body, offset)
        for _ in range(3):
            position = offset + rng.randrange(length)
            conn.output[position] ^= 1 << rng.randrange(8)
        _region(conn, sequence, offset, length)
    elif mode in ("rewrite", "punch", "shrink"):
        offset = 64 * 1024 * (sequence % 8)
        length = _write(conn, body, offset)
        _region(conn, sequence, offset, length)
        threading.Thread(target=_attack, args=(conn, mode, offset, length), daemon=True).start()
    else:
        _honest_send(conn, sequence, body)


shm.ShmConnection.send_data = lying_send  # type: ignore[method-assign]
shm.ShmConnection._map = keeping_map  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.argv[0] = "quiver.worker"
    if sys.argv[1:2] == ["-m"]:  # started as PYTHON -m quiver.worker ARGS
        del sys.argv[1:3]
    main()
