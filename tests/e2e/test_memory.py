"""Memory bounds of `quiver run`: each worker's cap (--worker-memory), and the engine's
in-flight window in bytes when results are far larger than their input."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pytest
from quiver_e2e import assert_failed, people_table, read_table, spec, write_table

TRANSPORTS = ["uds", "grpc", "grpc+tcp"]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_worker_over_its_memory_cap_is_stopped_and_the_error_says_so(
    quiver, tmp_path, private_tmp, transport
):
    source = write_table(people_table(2000), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", source, "--udf", spec("h", "memory", "hoard", "id"), "--batch-rows", 100,
        "--worker-memory", "300M", "--transport", transport, "-o", out,
    )  # fmt: skip
    stderr = assert_failed(result, out, "over its cap of 300 MiB", "--worker-memory")
    assert "over memory cap" in stderr, stderr
    assert list(private_tmp.iterdir()) == []


def test_a_worker_under_its_memory_cap_runs_to_the_end(quiver, tmp_path):
    source = write_table(people_table(500), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", source, "--udf", spec("h", "memory", "hoard", "id"), "--batch-rows", 250,
        "--worker-memory", "1G", "-o", out,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert read_table(out).column("h").to_pylist() == list(range(500))


@pytest.mark.parametrize("size", ["lots", "12Q", "0"])
def test_a_bad_memory_size_is_a_usage_error(quiver, tmp_path, size):
    source = write_table(people_table(10), tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    result = quiver(
        "run", source, "--udf", spec("h", "memory", "hoard", "id"), "--worker-memory", size,
        "-o", out,
    )  # fmt: skip
    assert_failed(result, out, "--worker-memory", size, status=2)


def _engine_peak_mib(args: list[str], env: dict[str, str], cwd) -> int:
    """Run `args` and return the engine's own peak memory (MiB), read from /proc while it runs
    (the workers' memory is not counted): the exact peak of its resident memory (VmHWM), less
    the most shared memory it had mapped and touched at once (RssShmem, sampled). That is the
    shm transport's arenas, which the engine shares with its workers, fixed in size per worker."""
    process = subprocess.Popen(
        args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    peak_kib = shared_kib = 0
    while process.poll() is None:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
        except OSError:
            break
        match = re.search(r"VmHWM:\s+(\d+) kB", status)
        if match:
            peak_kib = max(peak_kib, int(match.group(1)))
        match = re.search(r"RssShmem:\s+(\d+) kB", status)
        if match:
            shared_kib = max(shared_kib, int(match.group(1)))
        time.sleep(0.01)
    stderr = process.communicate()[1].decode()
    assert process.returncode == 0, stderr
    return (peak_kib - shared_kib) // 1024


@pytest.mark.parametrize("transport", ["uds", "shm"])
def test_results_far_larger_than_their_input_stay_within_the_window(quiver, tmp_path, transport):
    # 6 batches of 64k rows, each answered with ~200 MB of strings. Batch-counted alone
    # the window (4 per worker) would hold ~800 MB of results in the engine; bounded in
    # bytes it holds one such result at a time.
    rows = 6 * 65536
    source = write_table(people_table(rows).select(["id"]), tmp_path / "in.arrow", 65536)
    out = tmp_path / "out.arrows"
    args = [
        str(quiver.binary), "run", str(source), "--udf", spec("z", "memory", "blow_up", "id"),
        "--output-format", "noop", "--max-in-flight-bytes", "256M", "-q", "--transport", transport,
    ]  # fmt: skip
    peak = _engine_peak_mib(args, quiver.env, tmp_path)
    assert not out.exists()
    # At most the result being written out and the next one (~210 MB each) in the engine,
    # never a window of four.
    assert peak < 650, f"the engine's peak resident memory was {peak} MiB"
    table = pa.table({"id": pa.array(range(3), pa.int64())})
    small = write_table(table, tmp_path / "small.parquet")
    check = tmp_path / "small-out.parquet"
    result = quiver("run", small, "--udf", spec("z", "memory", "blow_up", "id"), "-o", check)
    assert result.returncode == 0, result.stderr
    assert read_table(check).column("z").to_pylist() == ["z" * 3200] * 3
