"""The security checks of docs/security.md, seen from a worker `quiver run` started and from
another process of the same user."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from quiver_e2e import assert_failed, people_table, spec, write_table

IMPOSTOR = Path(__file__).resolve().parent / "fake" / "impostor.py"
SECRET = re.compile(r"[0-9a-f]{64}")


def worker_report(quiver, tmp_path: Path, transport: str) -> dict:
    source = write_table(people_table(5), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", source, "--udf", spec("r", "security", "what_the_worker_sees", "id"),
        "--transport", transport, "-o", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(pq.read_table(out).column("r")[0].as_py())


@pytest.mark.parametrize("transport", ["uds", "grpc"])
def test_the_private_socket_directory_is_0700_and_removed(quiver, tmp_path, private_tmp, transport):
    report = worker_report(quiver, tmp_path, transport)
    assert report["connection"].split(":", 1)[1].startswith(str(private_tmp)), report
    assert report["directory_mode"] == "0o700", report
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("transport", ["uds", "grpc", "grpc+tcp"])
def test_the_secret_is_on_no_command_line_and_in_no_environment(quiver, tmp_path, transport):
    report = worker_report(quiver, tmp_path, transport)
    assert not SECRET.search(report["cmdline"]), report["cmdline"]
    assert "QUIVER_WORKER_SECRET=" not in report["environ"], report["environ"]
    assert not SECRET.search(report["environ"]), report["environ"]


def test_a_grpc_worker_the_engine_starts_listens_on_loopback_only(quiver, tmp_path):
    report = worker_report(quiver, tmp_path, "grpc+tcp")
    assert report["connection"].startswith("grpc+tcp:127.0.0.1:"), report
    assert report["listening"], report
    # /proc/net/tcp writes 127.0.0.1 as 0100007F; tcp6 writes ::1, and ::ffff:127.0.0.1 (gRPC
    # may listen on an IPv6 socket bound to the mapped IPv4 loopback). A wildcard is all zeros.
    loopback = {
        "0100007F",
        "00000000000000000000000001000000",
        "0000000000000000FFFF00000100007F",
    }
    assert all(address.split(":")[0] in loopback for address in report["listening"]), report


def test_another_process_connecting_before_the_worker_is_refused(quiver, tmp_path, private_tmp):
    # The worker command first runs an impostor (another process of the same user) that
    # connects to the worker's socket and presents a guessed secret; then the real worker.
    log = tmp_path / "impostor.log"
    wrapper = tmp_path / "python-with-impostor"
    wrapper.write_text(
        f'#!/bin/sh\n"{sys.executable}" "{IMPOSTOR}" "$@"\nexec "{sys.executable}" "$@"\n'
    )
    wrapper.chmod(0o755)
    quiver.env["QUIVER_IMPOSTOR_LOG"] = str(log)
    source = write_table(people_table(5), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", source, "--udf", spec("x", "untrusted", "echo", "name"), "--python", wrapper,
        "--transport", "uds", "-o", out,
    )  # fmt: skip
    assert_failed(result, out, "presented a wrong secret and was refused")
    assert log.read_text() == "0", "the engine sent the impostor something"
    assert list(private_tmp.iterdir()) == []
