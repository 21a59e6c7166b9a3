"""`quiver conformance`: the kit passes the repository's workers and catches a broken one."""

from __future__ import annotations

import re
import sys

import pytest
from test_runtimes import CPP_WORKER, RUST_WORKER, _built


def _summary(stdout: str) -> tuple[int, int]:
    match = re.search(r"^(\d+) passed, (\d+) failed$", stdout, re.MULTILINE)
    assert match, stdout
    return int(match.group(1)), int(match.group(2))


@pytest.mark.parametrize("transport", ["uds", "grpc+unix", "shm"])
def test_the_python_worker_passes(quiver, transport):
    result = quiver(
        "conformance",
        "--transport",
        transport,
        "--payload-format",
        "python/ref",
        "--",
        sys.executable,
        "-m",
        "quiver.worker",
        timeout=300,
    )
    passed, failed = _summary(result.stdout)
    assert (failed, result.returncode) == (0, 0), result.stdout + result.stderr
    assert passed >= 20


@pytest.mark.parametrize("worker", [CPP_WORKER, RUST_WORKER], ids=["cpp", "rust"])
def test_the_compiled_example_workers_pass_on_every_transport(quiver, worker):
    if not _built(worker):
        pytest.skip(f"{worker} is not built")
    result = quiver("conformance", "--transport", "all", "--", worker, timeout=300)
    passed, failed = _summary(result.stdout)
    assert (failed, result.returncode) == (0, 0), result.stdout + result.stderr
    assert passed >= 60


def test_a_wrapper_that_does_not_exec_fails_and_names_the_section(quiver, tmp_path):
    if not _built(CPP_WORKER):
        pytest.skip(f"{CPP_WORKER} is not built")
    wrapper = tmp_path / "wrapper.sh"
    wrapper.write_text(f'#!/bin/sh\n"{CPP_WORKER}" "$@"\n')
    wrapper.chmod(0o755)
    result = quiver("conformance", "--transport", "uds", "--", wrapper, timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert re.search(
        r"^FAIL \[uds\] hello — .*exec the worker.*\(spec §1\)$", result.stdout, re.MULTILINE
    ), result.stdout
    _, failed = _summary(result.stdout)
    assert failed >= 1


def test_a_worker_command_is_required(quiver):
    result = quiver("conformance")
    assert result.returncode == 2
    assert "WORKER_COMMAND" in result.stderr
