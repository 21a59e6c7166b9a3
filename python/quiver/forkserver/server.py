"""The fork server's loop: accept requests, fork workers, report their exits.

One request per connection (docs/protocol.md, "Fork server"), read as it arrives, so that
connections are served concurrently and a slow or silent one holds up only itself: the engine sends
the worker's argv, environment and current directory with its output pipe and secret pipe as
SCM_RIGHTS descriptors; the server forks, answers ``pid N``, and when the worker ends answers ``exit
N`` or ``signal N``. It keeps the ended worker a zombie until the engine closes the connection, so
the engine can signal the worker's pid and process group without racing pid reuse. When the engine
hangs up first (it died), the worker's process group gets SIGKILL: workers die with their engine, as
the engine's own children do through PR_SET_PDEATHSIG.
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
from collections.abc import Sequence
from dataclasses import dataclass

from quiver.forkserver import child
from quiver.forkserver.request import REQUEST_TIMEOUT, Request, RequestError, RequestReader

DEFAULT_IDLE_TIMEOUT = 300.0

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


def start_values(names: Sequence[str]) -> dict[bytes, bytes]:
    """Return the values of the variables ``names`` this process was started with.

    Read from /proc/self/environ, which Python's own changes at start (C locale coercion sets
    LC_CTYPE) do not touch: they are the values the engine hashed.
    """
    try:
        with open("/proc/self/environ", "rb") as environ:
            entries = environ.read().split(b"\0")
    except OSError:
        entries = [key + b"=" + value for key, value in os.environb.items()]
    values = dict(entry.partition(b"=")[::2] for entry in entries if b"=" in entry)
    return {name.encode(): values.get(name.encode(), b"") for name in names}


def differing_variable(env: list[bytes], start: dict[bytes, bytes]) -> str | None:
    """Return a description of the first variable of ``start`` that ``env`` sets otherwise."""
    values = dict(entry.partition(b"=")[::2] for entry in env)
    for name, value in start.items():
        wanted = values.get(name, b"")
        if wanted != value:
            return f"{name.decode()} is {value!r} in the server but {wanted!r} for this worker"
    return None


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

    def __init__(
        self,
        listener: socket.socket,
        socket_path: str,
        idle_timeout: float,
        fixed_at_start: Sequence[str] = (),
    ) -> None:
        self.listener: socket.socket | None = listener
        self.socket_path = socket_path
        self.socket_inode = os.stat(socket_path).st_ino
        self.idle_timeout = idle_timeout
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, None)
        self.jobs: dict[int, _Job] = {}
        self.pending: set[RequestReader] = set()  # connections whose request is incomplete
        self.files = _module_files()
        self.start_values = start_values(fixed_at_start)
        self.pid = os.getpid()

    def run(self) -> int:
        """Serve until idle (or until told the installation changed); return 0."""
        idle_since = time.monotonic()
        while self.listener is not None or self.jobs or self.pending:
            timeout = None
            if not self.jobs and not self.pending:
                timeout = idle_since + self.idle_timeout - time.monotonic()
                if timeout <= 0:
                    break
            if self.pending:
                first = min(reader.deadline for reader in self.pending) - time.monotonic()
                timeout = max(0.0, first if timeout is None else min(timeout, first))
            for key, _ in self.selector.select(timeout):
                if key.data is None:
                    self._accept()
                elif key.data[0] == "request":
                    self._on_request(key.data[1])
                elif key.data[0] == "conn":
                    self._on_hang_up(key.data[1])
                else:
                    self._on_exit(key.data[1])
            self._expire_requests()
            if self.jobs or self.pending:
                idle_since = time.monotonic()
        self._stop_listening()
        return 0

    def _accept(self) -> None:
        """Take a connection of this user; its request is read as it arrives (_on_request)."""
        assert self.listener is not None
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        try:
            if peer_uid(conn) != os.getuid():
                conn.close()  # another user's process: no answer at all
                return
            conn.setblocking(False)
        except OSError:
            conn.close()
            return
        reader = RequestReader(conn)
        self.pending.add(reader)
        self.selector.register(conn, selectors.EVENT_READ, ("request", reader))

    def _on_request(self, reader: RequestReader) -> None:
        """Read more of a request; once complete, serve it."""
        try:
            request = reader.feed()
        except RequestError as exc:
            self._drop_request(reader, f"error {exc}\n")
            return
        except OSError:
            self._drop_request(reader, None)
            return
        if request is None:
            return
        self.pending.discard(reader)
        self.selector.unregister(reader.conn)
        conn = reader.conn
        try:
            conn.setblocking(True)
            conn.settimeout(REQUEST_TIMEOUT)  # for the short answer only
            job = self._serve(conn, request)
        except OSError:
            job = None
        if job is None:
            conn.close()
            return
        job.conn = conn
        self.jobs[job.pid] = job
        self.selector.register(conn, selectors.EVENT_READ, ("conn", job))
        self.selector.register(job.pidfd, selectors.EVENT_READ, ("exit", job))

    def _drop_request(self, reader: RequestReader, answer: str | None) -> None:
        """Forget an unfinished request, answering ``answer`` first when there is one."""
        self.pending.discard(reader)
        self.selector.unregister(reader.conn)
        if answer is not None:
            with contextlib.suppress(OSError):
                reader.conn.send(answer.encode())
        reader.close()

    def _expire_requests(self) -> None:
        """Drop the connections whose request did not arrive in time."""
        now = time.monotonic()
        for reader in [r for r in self.pending if r.deadline <= now]:
            self._drop_request(
                reader, f"error the request did not arrive within {REQUEST_TIMEOUT:g} s\n"
            )

    def _serve(self, conn: socket.socket, request: Request) -> _Job | None:
        """Return the job forked for ``request``, or None (answered) if none."""
        differing = differing_variable(request.env, self.start_values)
        if differing is not None:
            for fd in request.fds:
                os.close(fd)
            conn.sendall(f"error environment: {differing}\n".encode())
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


def serve(socket_path: str, idle_timeout: float, fixed_at_start: Sequence[str] = ()) -> int:
    """Run the fork server on ``socket_path``; return its exit status.

    Exits 0 at once when another server holds the socket's lock (two engines started one at
    the same time), and 1 when the socket's directory is not private.

    ``fixed_at_start`` names the variables a Python process reads once, at its start (imports,
    hash seed, locale, ...): a forked worker cannot take other values from its run, so a request
    whose values differ from the server's is refused. The engine picks a server by the same
    variables and passes their names (``--fixed-at-start``): its list is the only one.
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
        return ForkServer(listener, socket_path, idle_timeout, fixed_at_start).run()
    finally:
        os.close(lock_fd)
