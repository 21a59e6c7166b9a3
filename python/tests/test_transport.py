"""The worker's transports: chosen by the endpoint's scheme, behind one interface."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from engine_harness import PYTHON_ROOT

from quiver.transport import EndpointError, register, transport_for, transport_name
from quiver.transport.base import EXIT_USAGE, WorkerConfig


@pytest.mark.parametrize(
    ("endpoint", "name"),
    [
        ("unix:/tmp/e.sock", "uds"),
        ("grpc+unix:/tmp/w.sock", "grpc"),
        ("grpc+tcp::0", "grpc"),
        ("shm:/tmp/e.sock", "shm"),
    ],
)
def test_the_scheme_names_the_transport(endpoint: str, name: str) -> None:
    assert transport_name(endpoint) == name
    assert transport_for(endpoint).name == name
    assert any(endpoint.startswith(scheme) for scheme in transport_for(endpoint).schemes)


@pytest.mark.parametrize("endpoint", ["/tmp/e.sock", "tcp:host:1", "grpc:x", "mem:/q"])
def test_unknown_schemes_are_endpoint_errors(endpoint: str) -> None:
    with pytest.raises(EndpointError, match="unix:"):
        transport_name(endpoint)


def test_a_registered_transport_serves_without_changing_the_runtime() -> None:
    served: list[str] = []

    class Toy:
        name = "toy"
        schemes = ("toy:",)

        def serve(self, config: WorkerConfig, new_conversation) -> int:
            served.append(config.endpoint)
            return 0

    register("toy:", "toy", Toy)
    assert transport_name("toy:here") == "toy"
    assert transport_for("toy:here").serve(WorkerConfig("toy:here", None, b"", None), None) == 0
    assert served == ["toy:here"]


def _worker(*args: str) -> subprocess.Popen:
    env = dict(os.environ, QUIVER_WORKER_SECRET="s", PYTHONPATH=str(PYTHON_ROOT))
    command = [sys.executable, "-m", "quiver.worker", "--id", "t", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_a_grpc_endpoint_needs_no_transport_flag() -> None:
    folder = tempfile.mkdtemp(prefix="qvr-")
    socket_path = Path(folder) / "w.sock"
    proc = _worker("--connection", f"grpc+unix:{socket_path}")
    try:
        line = proc.stdout.readline().decode()
        assert f"serving grpc on grpc+unix:{socket_path}" in line
    finally:
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        os.rmdir(folder)


def test_a_transport_flag_that_disagrees_with_the_scheme_is_a_usage_error() -> None:
    proc = _worker("--transport", "uds", "--connection", "grpc+unix:/tmp/never.sock")
    output, _ = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_USAGE
    assert b"--transport uds does not take the endpoint" in output
