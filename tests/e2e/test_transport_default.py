"""The default transport (`auto`): shared memory with every worker that speaks it, uds without a
word with any other (docs/protocol.md section 10, "The offer").

A Python UDF tells which transport carried its batch: the worker maps the engine's arenas (memfds
named quiver-shm-*) only over shm. A worker that does not speak shm is played by a wrapper that
drops the engine's offer (QUIVER_SHM_CONNECTION) before it execs the real worker, as a worker
that knows nothing of the variable would ignore it.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from quiver_e2e import ROOT

UDFS = """
import pyarrow as pa
import quiver

@quiver.udf(returns="string")
def transport_used(x: pa.Array) -> pa.Array:
    with open("/proc/self/maps") as maps:
        used = "shm" if "memfd:quiver-shm" in maps.read() else "uds"
    return pa.array([used] * len(x))
"""

CPP_WORKER = ROOT / "build" / "cpp" / "examples" / "udf_worker" / "quiver_example_udf_worker"


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    (tmp_path / "udfs.py").write_text(UDFS)
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"x": pa.array(range(1000), pa.int64())}), path)
    return path


def without_offer(tmp_path: Path, *command: str) -> Path:
    """Write a wrapper that runs COMMAND with the engine's shm offer removed."""
    wrapper = tmp_path / "no-shm-worker"
    wrapper.write_text(
        "#!/bin/sh\nunset QUIVER_SHM_CONNECTION\nexec " + " ".join(command) + ' "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def transports(quiver, inputs: Path, *options: str) -> set[str]:
    """Run transport_used over `inputs`; return the transports its batches came by."""
    out = inputs.parent / "out.parquet"
    result = quiver("run", inputs, "--udf", "t=udfs.py:transport_used(x)", "-o", out, *options)
    assert result.returncode == 0, result.stderr
    assert "shm" not in result.stderr and "shared memory" not in result.stderr, result.stderr
    return set(pq.read_table(out)["t"].to_pylist())


def test_the_default_puts_python_batches_in_shared_memory(quiver, inputs):
    assert transports(quiver, inputs, "--batch-rows", "100") == {"shm"}


def test_transport_uds_offers_no_shared_memory(quiver, inputs):
    assert transports(quiver, inputs, "--transport", "uds") == {"uds"}


def test_a_worker_that_ignores_the_offer_is_served_over_uds_without_a_word(quiver, inputs):
    python = without_offer(inputs.parent, sys.executable)
    used = transports(quiver, inputs, "--python", python, "--no-daemon", "--batch-rows", "100")
    assert used == {"uds"}


@pytest.mark.skipif(not os.access(CPP_WORKER, os.X_OK), reason="no C++ example worker built")
@pytest.mark.parametrize("offer", ["taken", "ignored"])
def test_a_compiled_worker_takes_the_offer_or_is_served_over_uds(quiver, inputs, offer):
    worker = CPP_WORKER if offer == "taken" else without_offer(inputs.parent, str(CPP_WORKER))
    out = inputs.parent / "out.parquet"
    result = quiver(
        "run", inputs, "--runtime", f"cc={worker}", "--udf", "y=cc:add_one(x)", "-o", out
    )
    assert result.returncode == 0, result.stderr
    assert pq.read_table(out)["y"].to_pylist() == list(range(1, 1001))
