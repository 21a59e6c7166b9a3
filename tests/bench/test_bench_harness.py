"""The end-to-end benchmark harness (bench/run.py) works: it checks the harness, not speed.

Runs every peer on every scenario at scale 0.01 with one timed run and checks the three
files it leaves. A peer that cannot run here (no quiver binary, no PySpark) must appear
with its error instead of a time.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = (
    "concat-2m-200",
    "identity-1m-1000",
    "identity-2m-200",
    "identity-10m-100",
    "identity-20m-100",
    "normalize-1m-100",
)
PEERS = (
    "quiver-columnar",
    "quiver-cold",
    "quiver-shm",
    "quiver-rows",
    "quiver-2-workers",
    "quiver-session",
    "spark-columnar",
    "spark-rows",
    "spark-2",
    "duckdb",
    "polars",
    "daft-process",
    "daft-threads",
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run the harness once, at the smallest scale, into a temporary folder."""
    out = tmp_path_factory.mktemp("bench-results")
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--scale", "0.01"]
    command += ["--warmups", "0", "--runs", "1", "--out", str(out)]
    run = functools.partial(subprocess.run, check=False, capture_output=True, text=True)
    done = run(command, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def results(results_dir: Path) -> dict:
    """Return results.json."""
    return json.loads((results_dir / "results.json").read_text())


def test_every_scenario_has_every_peer_with_a_time_or_an_error(results: dict) -> None:
    assert [scenario["key"] for scenario in results["scenarios"]] == list(SCENARIOS)
    for scenario in results["scenarios"]:
        assert set(scenario["peers"]) == set(PEERS), scenario["key"]
        for peer, result in scenario["peers"].items():
            where = f"{scenario['key']} / {peer}"
            if "error" in result:
                assert result["error"], where
                continue
            assert result["median_ms"] > 0, where
            assert result["min_ms"] <= result["median_ms"] <= result["max_ms"], where
            assert len(result["times_ms"]) == 1, where


@pytest.mark.parametrize("peer", ["duckdb", "polars", "daft-process", "daft-threads"])
def test_in_process_peers_ran_when_installed(results: dict, peer: str) -> None:
    """DuckDB, Polars and Daft run in process (Daft's process UDFs in processes it starts
    itself): once installed, nothing here can stop them."""
    if importlib.util.find_spec(peer.partition("-")[0]) is None:
        pytest.skip(f"{peer} is not installed (bench/requirements.txt)")
    for scenario in results["scenarios"]:
        assert "error" not in scenario["peers"][peer], scenario["peers"][peer]


def test_daft_process_udfs_run_in_processes_of_their_own(results: dict) -> None:
    if importlib.util.find_spec("daft") is None:
        pytest.skip("daft is not installed (bench/requirements-no-deps.txt)")
    for scenario in results["scenarios"]:
        process = scenario["peers"]["daft-process"]
        threads = scenario["peers"]["daft-threads"]
        assert process["settings"]["use_process"] is True
        assert threads["settings"]["use_process"] is False
        assert process["peak_rss_mb"]["workers"] > 20, (scenario["key"], process)
        assert threads["peak_rss_mb"]["workers"] == 0, (scenario["key"], threads)


def test_two_worker_peers_run_two_workers_whatever_the_harness_default(results: dict) -> None:
    assert results["config"]["workers"] == 1
    for scenario in results["scenarios"]:
        quiver = scenario["peers"]["quiver-2-workers"]
        assert "error" not in quiver, quiver
        assert "--workers 2" in quiver["settings"]["command"]
    spark = results["peers"]["spark-2"]
    if "error" not in spark:
        assert spark["settings"]["master"] == "local[2]"


def test_the_cpu_bound_scenario_has_the_parallel_ratios(results: dict) -> None:
    cpu = next(s for s in results["scenarios"] if s["key"] == "normalize-1m-100")
    assert cpu["udf"] == "normalize(data)"
    polars = cpu["peers"]["polars"]
    quiver = cpu["peers"]["quiver-2-workers"]
    if "error" not in polars:
        expected = round(polars["median_ms"] / quiver["median_ms"], 2)
        assert cpu["ratios"]["quiver-2-vs-polars"] == expected
    for key in ("quiver-2-vs-duckdb", "quiver-2-vs-daft-process", "quiver-2-vs-spark-2"):
        assert key in cpu["ratios"]


def test_the_normalisation_folds_case_accents_and_separators() -> None:
    # Loaded from its path under a name of its own: other suites have a module called `udfs`.
    spec = importlib.util.spec_from_file_location("bench_udfs", ROOT / "bench" / "udfs.py")
    udfs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(udfs)

    assert udfs.normalize_text("Ça_va--BIEN  déjà") == "ca va bien deja"
    assert udfs.normalize_text("ＡＢＣ-１２３") == "abc 123"


def test_memory_is_sampled(results: dict) -> None:
    for scenario in results["scenarios"]:
        for peer, result in scenario["peers"].items():
            if "error" not in result:
                assert result["peak_rss_mb"]["total"] > 0, (scenario["key"], peer)


def test_workers_forked_by_the_fork_server_count_in_the_memory(results: dict) -> None:
    # quiver-columnar's workers come from the fork server (not the engine's children) once
    # it runs; quiver-cold's are the engine's own. Both must show their workers' memory.
    for scenario in results["scenarios"]:
        for peer in ("quiver-columnar", "quiver-cold"):
            result = scenario["peers"][peer]
            assert "error" not in result, result
            assert result["peak_rss_mb"]["workers"] > 20, (scenario["key"], peer, result)


def test_ratios_and_machine_are_recorded(results: dict) -> None:
    for scenario in results["scenarios"]:
        ratios = scenario["ratios"]
        assert "spark-columnar-vs-rows" in ratios
        assert "quiver-vs-duckdb" in ratios
        duckdb = scenario["peers"]["duckdb"]
        quiver = scenario["peers"]["quiver-columnar"]
        if "error" not in quiver:
            expected = round(duckdb["median_ms"] / quiver["median_ms"], 2)
            assert ratios["quiver-vs-duckdb"] == expected
    machine = results["machine"]
    assert machine["cores"] >= 1
    assert machine["cpu"]
    assert machine["versions"]["pyarrow"]
    assert machine["quiver_commit"]


def test_markdown_has_the_seed_table(results_dir: Path) -> None:
    text = (results_dir / "results.md").read_text()
    assert "| scenario | rows | string length |" in text
    assert "Spark columnar vs row-based" in text
    assert "| string concat | 20K | 200 |" in text
    assert "| string identity | 200K | 100 |" in text
    assert "| string normalise (CPU) | 10K | 100 |" in text
    assert "Machine: " in text


def test_chart_is_a_png(results_dir: Path) -> None:
    chart = (results_dir / "results.png").read_bytes()
    assert chart.startswith(PNG_SIGNATURE)
    assert len(chart) > 1000
