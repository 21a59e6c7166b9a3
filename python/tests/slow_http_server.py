"""A loopback HTTP server for the async UDF tests: slow on purpose, and failing on request.

It answers ``GET /?key=K`` after ``delay`` seconds with the body ``K``, unless ``plan[K]``
says otherwise for that attempt: ``"429:SECONDS"`` (Too Many Requests with ``Retry-After``),
``"503"``, ``"drop"`` (close the connection without an answer) or ``"ok"``. It counts the
requests in flight (the most at once is what a UDF's ``max_concurrency`` must bound) and stops
waiting on a request whose client has gone, so that a test can tell no request is left
pending.
"""

from __future__ import annotations

import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class SlowServer(ThreadingHTTPServer):
    """The server and what it saw; use as a context manager."""

    daemon_threads = True
    request_queue_size = 128  # the default 5 would drop the connections of N > 5 calls at once

    def __init__(self, delay: float = 0.05) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.delay = delay
        self.delays: dict[str, float] = {}  # per key, overriding ``delay``
        self.plan: dict[str, list[str]] = {}
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.requests = 0
        self.abandoned = 0  # requests whose client closed before the answer
        self.arrivals: dict[str, list[float]] = {}
        self.pids: set[int] = set()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        """Return the port the server listens on."""
        return self.server_address[1]

    def __enter__(self) -> SlowServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()

    def wait_idle(self, seconds: float) -> bool:
        """Wait until no request is in flight; tell whether that happened in time."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with self.lock:
                if self.in_flight == 0:
                    return True
            time.sleep(0.02)
        return False


class _Handler(BaseHTTPRequestHandler):
    server: SlowServer
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base's name
        """Keep the test output quiet."""

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        """Count the request, wait, and answer as the plan says."""
        query = parse_qs(urlparse(self.path).query)
        key = query.get("key", [""])[0]
        server = self.server
        with server.lock:
            server.requests += 1
            server.in_flight += 1
            server.most_in_flight = max(server.most_in_flight, server.in_flight)
            server.arrivals.setdefault(key, []).append(time.monotonic())
            attempt = len(server.arrivals[key]) - 1
            steps = server.plan.get(key, [])
            action = steps[attempt] if attempt < len(steps) else "ok"
            server.pids.update(int(p) for p in query.get("pid", []))
        try:
            if self._wait(server.delays.get(key, server.delay)):
                try:
                    self._answer(action, key)
                    return
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client left as the answer went out
            with server.lock:
                server.abandoned += 1
        finally:
            with server.lock:
                server.in_flight -= 1

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds``; stop early (False) when the client closes its connection."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.02))
            if readable and not self.connection.recv(1, socket.MSG_PEEK):
                return False
        return True

    def _answer(self, action: str, key: str) -> None:
        """Send the planned answer."""
        if action == "drop":
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if action.startswith("429"):
            self.send_response(429)
            self.send_header("Retry-After", action.split(":", 1)[1])
            self.end_headers()
            return
        if action == "503":
            self.send_response(503)
            self.end_headers()
            return
        body = key.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
