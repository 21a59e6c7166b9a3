"""The fork server's loop: accept requests, fork workers, report their exits.

One request per connection (docs/protocol.md, "Fork server"): the engine sends the worker's
argv, environment and current directory with its output pipe and secret pipe as SCM_RIGHTS
descriptors; the server forks, answers ``pid N``, and when the worker ends answers ``exit N`` or
``signal N``. It keeps the ended worker a zombie until the engine closes the connection, so the
engine can signal the worker's pid and process group without racing pid reuse. When the engine
hangs up first (it died), the worker's process group gets SIGKILL: workers die with their
engine, as the engine's own children do through PR_SET_PDEATHSIG.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
import selectors
import signal
import socket
import stat
import struct
import sys
import time
import traceback
from dataclasses import dataclass, field

from quiver.forkserver import child

DEFAULT_IDLE_TIMEOUT = 300.0
MAGIC = b"quiver-fork-1"
# A request holds argv and the environment: far below this.
MAX_REQUEST_BYTES = 4 << 20
# Time an engine has to send its whole request once connected.
REQUEST_TIMEOUT = 5.0
# The output pipe and the secret pipe.
MAX_FDS = 2

# Imported once here so that every forked worker has them already; the worker's own imports
# are then dictionary look-ups. pandas is optional: a worker imports it when a UDF needs it.
PRELOAD = (
    "numpy",
    "pyarrow",
    "pyarrow.ipc",
    "pandas",
    "pyarrow.pandas_compat",
    "cloudpickle",
    "quiver._proto",
    "quiver.worker.__main__",
    "quiver.worker.state_machine",
    "quiver.worker.execution",
    "quiver.worker.evaluators",
    "quiver.worker.loader",
    "quiver.transport.uds",
)


class RequestError(Exception):
    """A request that cannot be served; its text goes back as ``error TEXT``."""


def check_private_directory(path: str) -> None:
    """Raise PermissionError unless ``path`` is a real directory of this user with mode 0700."""
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise PermissionError(f"{path} is not a directory (a symlink or file is refused)")
    if info.st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to uid {info.st_uid}, not to this user")
    if info.st_mode & 0o077:
        raise PermissionError(
            f"{path} has mode {stat.S_IMODE(info.st_mode):o}; it must be 0700 (chmod 700 it)"
        )


def peer_uid(conn: socket.socket) -> int:
    """Return the uid of the process at the other end of a Unix socket (SO_PEERCRED)."""
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


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


def receive_request(conn: socket.socket) -> Request:
    """Read one length-prefixed request and the descriptors that came with it."""
    data = bytearray()
    fds: list[int] = []
    want = None
    try:
        while want is None or len(data) < want:
            chunk, ancillary, _, _ = conn.recvmsg(
                65536, socket.CMSG_SPACE(MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC
            )
            for level, kind, body in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(struct.unpack(f"{len(body) // 4}i", body[: len(body) // 4 * 4]))
            if not chunk:
                raise RequestError("the engine closed the connection inside its request")
            data += chunk
            if want is None and len(data) >= 4:
                want = 4 + struct.unpack("<I", data[:4])[0]
                if want > MAX_REQUEST_BYTES:
                    raise RequestError(f"the request is {want} bytes, over {MAX_REQUEST_BYTES}")
        if len(data) != want:
            raise RequestError("the engine sent more than its request")
        if not 1 <= len(fds) <= MAX_FDS:
            raise RequestError(f"the request came with {len(fds)} descriptors, not 1 or 2")
        request = parse_request(bytes(data[4:]))
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    request.fds = fds
    return request


def _module_files() -> dict[str, int]:
    """Return the mtimes of quiver's own loaded files, to notice an upgrade or an edit."""
    files = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if path and (name == "quiver" or name.startswith("quiver.")):
            with contextlib.suppress(OSError):
                files[path] = os.stat(path).st_mtime_ns
    return files


def _stale_file(files: dict[str, int]) -> str | None:
    """Return a quiver file that changed since the server started, if any."""
    for path, mtime in files.items():
        try:
            if os.stat(path).st_mtime_ns != mtime:
                return path
        except OSError:
            return path
    return None


@dataclass
class _Job:
    """A forked worker and the connection of the engine that asked for it."""

    pid: int
    conn: socket.socket | None
    pidfd: int | None
    exited: bool = False


class ForkServer:
    """Listens on ``socket_path`` and forks workers until idle for ``idle_timeout`` seconds."""

    def __init__(self, listener: socket.socket, socket_path: str, idle_timeout: float) -> None:
        self.listener: socket.socket | None = listener
        self.socket_path = socket_path
        self.socket_inode = os.stat(socket_path).st_ino
        self.idle_timeout = idle_timeout
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, None)
        self.jobs: dict[int, _Job] = {}
        self.files = _module_files()
        self.pid = os.getpid()

    def run(self) -> int:
        """Serve until idle (or until told the installation changed); return 0."""
        idle_since = time.monotonic()
        while self.listener is not None or self.jobs:
            timeout = None
            if not self.jobs:
                timeout = idle_since + self.idle_timeout - time.monotonic()
                if timeout <= 0:
                    break
            for key, _ in self.selector.select(timeout):
                if key.data is None:
                    self._accept()
                elif key.data[0] == "conn":
                    self._on_hang_up(key.data[1])
                else:
                    self._on_exit(key.data[1])
            if self.jobs:
                idle_since = time.monotonic()
        self._stop_listening()
        return 0

    def _accept(self) -> None:
        """Serve one request: check the peer, read it, fork, answer ``pid N``."""
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        try:
            job = self._serve(conn)
        except OSError:
            job = None
        if job is None:
            conn.close()
            return
        job.conn = conn
        self.jobs[job.pid] = job
        self.selector.register(conn, selectors.EVENT_READ, ("conn", job))
        self.selector.register(job.pidfd, selectors.EVENT_READ, ("exit", job))

    def _serve(self, conn: socket.socket) -> _Job | None:
        """Return the job forked for the request on ``conn``, or None (answered) if none."""
        if peer_uid(conn) != os.getuid():
            return None  # another user's process: no answer at all
        conn.settimeout(REQUEST_TIMEOUT)
        try:
            request = receive_request(conn)
        except RequestError as exc:
            conn.sendall(f"error {exc}\n".encode())
            return None
        try:
            stale = _stale_file(self.files)
            if stale is not None:
                conn.sendall(f"error stale: {stale} changed since the server started\n".encode())
                self._stop_listening()
                return None
            pid = self._fork(request)
        finally:
            for fd in request.fds:
                os.close(fd)
        job = _Job(pid, None, os.pidfd_open(pid))
        conn.settimeout(None)
        try:
            conn.sendall(b"pid %d\n" % pid)
        except OSError:
            os.killpg(pid, signal.SIGKILL)
            self._reap(job)
            return None
        return job

    def _fork(self, request: Request) -> int:
        """Fork a worker for ``request``; return its pid."""
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            try:
                child.become_worker(request, self.pid)
            except BaseException:
                traceback.print_exc()  # on the engine's log pipe by now
            finally:
                os._exit(127)
        # The child makes itself a process group leader; so does this, so that killpg cannot
        # miss the group whichever of the two runs first.
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)
        return pid

    def _on_hang_up(self, job: _Job) -> None:
        """The engine closed the connection: it read the exit, or it died (kill the worker)."""
        assert job.conn is not None
        try:
            data = job.conn.recv(64)
        except OSError:
            data = b""
        if data:
            return  # the engine sends nothing after its request; ignore noise
        self.selector.unregister(job.conn)
        job.conn.close()
        job.conn = None
        if job.exited:
            self._reap(job)
        else:
            with contextlib.suppress(OSError):
                os.killpg(job.pid, signal.SIGKILL)

    def _on_exit(self, job: _Job) -> None:
        """The worker ended: report how, keep it a zombie until the engine hangs up."""
        assert job.pidfd is not None
        self.selector.unregister(job.pidfd)
        info = os.waitid(os.P_PID, job.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        job.exited = True
        if job.conn is None:
            self._reap(job)
            return
        if info is not None and info.si_code == os.CLD_EXITED:
            line = b"exit %d\n" % info.si_status
        else:
            line = b"signal %d\n" % (info.si_status if info is not None else signal.SIGKILL)
        try:
            job.conn.sendall(line)
        except OSError:
            pass  # the hang-up comes next and reaps it

    def _reap(self, job: _Job) -> None:
        """Collect the ended worker and forget it."""
        with contextlib.suppress(ChildProcessError):
            os.waitpid(job.pid, 0)
        if job.pidfd is not None:
            os.close(job.pidfd)
            job.pidfd = None
        self.jobs.pop(job.pid, None)

    def _stop_listening(self) -> None:
        """Close the listener and remove its socket (if still ours): later engines start anew."""
        if self.listener is None:
            return
        self.selector.unregister(self.listener)
        with contextlib.suppress(OSError):
            if os.stat(self.socket_path).st_ino == self.socket_inode:
                os.unlink(self.socket_path)
        self.listener.close()
        self.listener = None


def preload() -> None:
    """Import what every worker needs (see PRELOAD); a missing optional package is skipped."""
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def serve(socket_path: str, idle_timeout: float) -> int:
    """Run the fork server on ``socket_path``; return its exit status.

    Exits 0 at once when another server holds the socket's lock (two engines started one at
    the same time), and 1 when the socket's directory is not private.
    """
    socket_path = os.path.abspath(socket_path)
    try:
        check_private_directory(os.path.dirname(socket_path))
    except (OSError, PermissionError) as exc:
        print(f"quiver fork server: refusing {socket_path}: {exc}", file=sys.stderr)
        return 1
    lock_fd = os.open(socket_path + ".lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0
    child.prepare()
    preload()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)
    try:
        listener.bind(socket_path)
    finally:
        os.umask(old_mask)
    listener.listen(64)
    try:
        return ForkServer(listener, socket_path, idle_timeout).run()
    finally:
        os.close(lock_fd)
