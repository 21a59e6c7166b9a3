"""Another process that connects to the engine's worker socket before the worker does.

Run with the worker's own arguments (`--connection unix:PATH` names the socket); it connects,
opens with a Hello that carries a guessed secret, and writes to $QUIVER_IMPOSTOR_LOG how many
bytes the engine sent it before closing the connection (a refused impostor gets none: no Init,
no batch).
"""

from __future__ import annotations

import os
import signal
import socket
import sys

from quiver._proto import pb
from quiver.protocol.framing import encode_control_frame
from quiver.transport.uds import send_frame


def record(received: int) -> None:
    with open(os.environ["QUIVER_IMPOSTOR_LOG"], "w") as log:
        log.write(str(received))


def main(argv: list[str]) -> int:
    # The engine stops the worker's process group, this one included, once it refused it.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    args = dict(zip(argv[::2], argv[1::2], strict=False))
    path = args["--connection"].removeprefix("unix:")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    hello = pb.Hello(protocol_version=1, worker_id=args["--id"], secret=b"0" * 64)
    send_frame(sock, encode_control_frame(pb.WorkerMessage(hello=hello).SerializeToString()))
    sock.settimeout(20)
    received = 0
    record(received)
    try:
        while chunk := sock.recv(65536):
            received += len(chunk)
            record(received)
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
