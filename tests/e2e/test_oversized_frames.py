"""A worker announcing a result over the 2 GiB frame limit is told so, not reported as lost.

A worker other than quiver's own Python worker (which refuses such a result itself, see
test_oversized_results.py) may send one: the engine refuses it at the frame header and says the
size, the limit and to send smaller batches, reporting a result too large rather than a worker
that went away. The fake worker (tests/e2e/fake/mutating_worker.py, mode `oversized`) announces
the size without sending the bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from quiver_e2e import assert_failed, people_table, spec, write_table

FAKE_WORKER = Path(__file__).resolve().parent / "fake" / "mutating_worker.py"


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    """Return an executable the engine starts as its 'Python': it runs the fake worker."""
    wrapper = tmp_path / "fake-python"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_WORKER}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def test_an_oversized_result_frame_is_reported_with_its_size(quiver, fake_python, tmp_path):
    source = write_table(people_table(100), tmp_path / "in.parquet")
    out = tmp_path / "out.arrow"
    quiver.env["QUIVER_FAKE_MODE"] = "oversized"
    result = quiver(
        "run", source, "--udf", spec("y", "untrusted", "echo", "name"), "--batch-timeout", 10,
        "--python", fake_python, "-q", "-o", out,
    )  # fmt: skip
    message = assert_failed(result, out, "2147487744 bytes (2.00 GiB)", "2147483648 bytes")
    assert "sent a result too large to take" in message, message
    assert "--batch-bytes" in message, message
    assert "batch too large" in message, message
    for misleading in ("worker lost", "still running", "connection failed"):
        assert misleading not in message, message
