"""`quiver conformance --dialect spark` fails a worker that breaks a rule, naming the rule.

The passing run against the Python worker is a step of scripts/test.sh; here the worker is
fake/spark_faulty_worker.py, which breaks one rule each (a real worker does not).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FAULTY = Path(__file__).resolve().parent / "fake" / "spark_faulty_worker.py"


def kit(quiver, fault: str) -> subprocess.CompletedProcess:
    return quiver(
        "conformance",
        "--dialect",
        "spark",
        "--transport",
        "unix",
        "--timeout",
        0.5,
        "--",
        sys.executable,
        FAULTY,
        fault,
        timeout=180,
    )


def test_the_kit_fails_a_worker_that_answers_with_the_wrong_row_count(quiver):
    result = kit(quiver, "wrong_rows")
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "FAIL [unix] single request \u2014 a DataResponse of 11 rows answered a batch of 10 "
        "(spec \u00a73)" in result.stdout
    ), result.stdout
    assert "PASS [unix] no input" in result.stdout, result.stdout
    assert result.stdout.rstrip().endswith("failed") and " 0 failed" not in result.stdout
