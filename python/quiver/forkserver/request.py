"""A fork request as the engine sends it (docs/protocol.md, "Fork server"), and its reader.

Its own module because both sides of a fork use it: the server reads requests, the forked child
(:mod:`.child`) sets itself up from one.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass, field

MAGIC = b"quiver-fork-1"
# A request holds argv and the environment: far below this.
MAX_REQUEST_BYTES = 4 << 20
# Time an engine has to send its whole request once connected.
REQUEST_TIMEOUT = 5.0
# The output pipe and the secret pipe.
MAX_FDS = 2


class RequestError(Exception):
    """A request that cannot be served; its text goes back as ``error TEXT``."""


@dataclass
class Request:
    """What the engine asks to start."""

    cwd: bytes
    argv: list[str]
    env: list[bytes]
    fds: list[int] = field(default_factory=list)


def parse_request(payload: bytes) -> Request:
    """Decode ``MAGIC \\0 CWD \\0 ARGC \\0 ARGV... \\0 ENV...``; raise RequestError if malformed."""
    fields = payload.split(b"\0")
    if len(fields) < 3 or fields[0] != MAGIC:
        raise RequestError(f"not a {MAGIC.decode()} request")
    try:
        argc = int(fields[2])
    except ValueError:
        raise RequestError("the argument count is not a number") from None
    if argc < 0 or 3 + argc > len(fields):
        raise RequestError(f"the request has fewer than {argc} arguments")
    try:
        argv = [arg.decode() for arg in fields[3 : 3 + argc]]
    except UnicodeDecodeError:
        raise RequestError("an argument is not UTF-8") from None
    env = [entry for entry in fields[3 + argc :] if entry]
    if any(b"=" not in entry for entry in env):
        raise RequestError("an environment entry has no '='")
    return Request(fields[1], argv, env)


class RequestReader:
    """Reads one length-prefixed request, and the descriptors that come with it, from a
    non-blocking connection, piece by piece as the engine sends it: a slow or silent engine
    holds up nobody but itself."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.deadline = time.monotonic() + REQUEST_TIMEOUT
        self._data = bytearray()
        self._fds: list[int] = []
        self._want: int | None = None

    def feed(self) -> Request | None:
        """Read what has arrived; return the request once complete (None: not yet).

        Raises RequestError for a malformed request, BlockingIOError never.
        """
        while self._want is None or len(self._data) < self._want:
            try:
                chunk, ancillary, _, _ = self.conn.recvmsg(
                    65536, socket.CMSG_SPACE(MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC
                )
            except (BlockingIOError, InterruptedError):
                return None
            for level, kind, body in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    count = len(body) // 4
                    self._fds.extend(struct.unpack(f"{count}i", body[: count * 4]))
            if not chunk:
                raise RequestError("the engine closed the connection inside its request")
            self._data += chunk
            if self._want is None and len(self._data) >= 4:
                self._want = 4 + struct.unpack("<I", self._data[:4])[0]
                if self._want > MAX_REQUEST_BYTES:
                    raise RequestError(
                        f"the request is {self._want} bytes, over {MAX_REQUEST_BYTES}"
                    )
        if len(self._data) != self._want:
            raise RequestError("the engine sent more than its request")
        if not 1 <= len(self._fds) <= MAX_FDS:
            raise RequestError(f"the request came with {len(self._fds)} descriptors, not 1 or 2")
        request = parse_request(bytes(self._data[4:]))
        request.fds, self._fds = self._fds, []
        return request

    def close(self) -> None:
        """Close the descriptors received so far and the connection."""
        for fd in self._fds:
            os.close(fd)
        self._fds = []
        self.conn.close()
