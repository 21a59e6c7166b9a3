"""The fork server on its own (python -m quiver.forkserver), driven over its socket as the engine
drives it: requests, refusals of other users and of unsafe directories, and worker exits."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from quiver.forkserver.request import MAGIC, RequestError, parse_request

NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"


@pytest.fixture
def private_dir():
    directory = Path(tempfile.mkdtemp(prefix="qfs-"))
    yield directory
    for entry in directory.iterdir():
        entry.unlink()
    directory.rmdir()


def start_server(
    directory: Path, idle: float = 30, fixed_at_start: str = "PYTHONHASHSEED"
) -> tuple[subprocess.Popen, Path]:
    """Start a server on DIRECTORY/fs.sock and wait until it listens."""
    path = directory / "fs.sock"
    server = subprocess.Popen(
        [sys.executable, "-m", "quiver.forkserver", "--socket", str(path), "--idle-timeout",
         str(idle), "--fixed-at-start", fixed_at_start],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not path.exists():
        assert server.poll() is None, server.communicate()
        assert time.monotonic() < deadline, "the server did not listen"
        time.sleep(0.02)
    return server, path


def request(path: Path, argv: list[str], env: dict[str, str] | None = None) -> tuple[list, int]:
    """Ask for a worker running ARGV; return the server's lines and the output pipe's read end."""
    conn = socket.socket(socket.AF_UNIX)
    conn.connect(str(path))
    out_r, out_w = os.pipe()
    fields = [MAGIC, os.getcwd().encode(), str(len(argv)).encode()]
    fields += [arg.encode() for arg in argv]
    fields += [f"{k}={v}".encode() for k, v in (env or dict(os.environ)).items()]
    payload = b"\0".join(fields)
    conn.sendmsg(
        [struct.pack("<I", len(payload)) + payload],
        [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", out_w))],
    )
    os.close(out_w)
    # The pid, then the exit; the server keeps the ended worker until the engine hangs up.
    answers = conn.makefile("rb")
    lines = [answers.readline().decode().strip()]
    if lines[0].startswith("pid "):
        lines.append(answers.readline().decode().strip())
    conn.close()
    return lines, out_r


def test_parse_request_rejects_malformed_requests():
    good = b"\0".join([MAGIC, b"/", b"1", b"--id", b"A=1"])
    assert parse_request(good).argv == ["--id"]
    assert parse_request(good).env == [b"A=1"]
    for bad in (b"nonsense", b"\0".join([MAGIC, b"/", b"9", b"x"]), good + b"\0NOEQUALS"):
        with pytest.raises(RequestError):
            parse_request(bad)


def test_a_worker_exit_is_reported_and_the_server_lives_on(private_dir):
    server, path = start_server(private_dir)
    try:
        # No secret: the worker logs why and exits with the usage status 2.
        lines, out = request(path, ["--id", "w1", "--connection", "unix:/nonexistent"])
        assert lines[0].startswith("pid ") and lines[1] == "exit 2", lines
        assert b"QUIVER_WORKER_SECRET" in os.read(out, 65536)
        os.close(out)
        lines, out = request(path, ["--id", "w2", "--connection", "unix:/nonexistent"])
        assert lines[1] == "exit 2"
        os.close(out)
        assert server.poll() is None
    finally:
        server.terminate()
        server.wait()


def test_a_malformed_request_is_answered_with_an_error(private_dir):
    server, path = start_server(private_dir)
    try:
        conn = socket.socket(socket.AF_UNIX)
        conn.connect(str(path))
        conn.sendall(struct.pack("<I", 5) + b"hello")  # no descriptors, no magic
        assert conn.makefile("rb").readline().startswith(b"error ")
        assert server.poll() is None
    finally:
        server.terminate()
        server.wait()


def test_the_server_exits_when_idle_and_removes_its_socket(private_dir):
    server, path = start_server(private_dir, idle=0.5)
    assert server.wait(timeout=15) == 0
    assert not path.exists()


def test_a_directory_open_to_others_is_refused(private_dir):
    private_dir.chmod(0o755)
    server = subprocess.run(
        [sys.executable, "-m", "quiver.forkserver", "--socket", str(private_dir / "fs.sock")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert server.returncode == 1
    assert "0700" in server.stderr
    assert not (private_dir / "fs.sock").exists()


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to make another user's directory")
def test_another_users_directory_is_refused(private_dir):
    os.chown(private_dir, NOBODY, NOBODY)
    server = subprocess.run(
        [sys.executable, "-m", "quiver.forkserver", "--socket", str(private_dir / "fs.sock")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    os.chown(private_dir, 0, 0)
    assert server.returncode == 1
    assert f"uid {NOBODY}" in server.stderr


@pytest.mark.skipif(
    os.getuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK),
    reason="needs root (to connect as another user) and /usr/bin/python3",
)
def test_another_users_connection_gets_no_worker(private_dir):
    server, path = start_server(private_dir)
    try:
        # Open the way on purpose, so that only SO_PEERCRED stands between nobody and the server.
        private_dir.chmod(0o755)
        path.chmod(0o777)
        # The server may close the connection before the probe writes: a broken pipe on the
        # write means the same as an empty read (closed without an answer).
        probe = (
            "import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])\n"
            "try:\n"
            "    s.sendall(b'x' * 8)\n"
            "    print(repr(s.recv(100)))\n"
            "except (BrokenPipeError, ConnectionResetError):\n"
            "    print(repr(b''))\n"
        )
        # The system Python: nobody may not reach this one's virtual environment.
        result = subprocess.run(
            [SYSTEM_PYTHON, "-c", probe, str(path)],
            user=NOBODY, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "b''"  # closed without an answer
        assert server.poll() is None
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()


def test_a_silent_or_half_sent_request_holds_up_only_itself(private_dir):
    server, path = start_server(private_dir)
    try:
        silent = socket.socket(socket.AF_UNIX)
        silent.connect(str(path))
        half = socket.socket(socket.AF_UNIX)
        half.connect(str(path))
        half.sendall(struct.pack("<I", 1000) + MAGIC)  # a length, then a few of its bytes
        started = time.monotonic()
        lines, out_r = request(path, ["--version"])
        waited = time.monotonic() - started
        os.close(out_r)
        assert lines[0].startswith("pid "), lines
        # The server gives a request 5 s to arrive; serving one at a time, this one waited that.
        assert waited < 2.5, f"the request waited {waited:.1f} s behind the silent ones"
        silent.settimeout(10)
        assert silent.recv(200).startswith(b"error the request did not arrive within 5 s")
        half.close()
        silent.close()
    finally:
        server.terminate()
        server.wait()


def test_a_request_under_other_start_up_variables_is_refused(private_dir):
    server, path = start_server(private_dir)
    try:
        env = dict(os.environ, PYTHONHASHSEED="4242")
        lines, out_r = request(path, ["--version"], env)
        os.close(out_r)
        assert lines[0].startswith("error environment: PYTHONHASHSEED is"), lines
    finally:
        server.terminate()
        server.wait()


def test_only_the_variables_named_at_start_must_match(private_dir):
    # The engine names the variables it picks a server by (--fixed-at-start); others may differ.
    server, path = start_server(private_dir, fixed_at_start="PYTHONHASHSEED,PYTHONOPTIMIZE")
    try:
        lines, out_r = request(path, ["--version"], dict(os.environ, PYTHONWARNINGS="error"))
        os.close(out_r)
        assert lines[0].startswith("pid "), lines
        lines, out_r = request(path, ["--version"], dict(os.environ, PYTHONOPTIMIZE="2"))
        os.close(out_r)
        assert lines[0].startswith("error environment: PYTHONOPTIMIZE is"), lines
    finally:
        server.terminate()
        server.wait()
