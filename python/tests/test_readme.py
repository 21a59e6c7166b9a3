"""The README's Python examples run as written (from the repository root, in one script)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def python_blocks() -> list[str]:
    """The ```python blocks of the README's "Python API" section, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_the_python_api_section_has_examples():
    assert len(python_blocks()) >= 2


@pytest.mark.skipif(
    importlib.util.find_spec("quiver._engine") is None, reason="quiver._engine is not built"
)
def test_readme_python_examples_run():
    blocks = python_blocks()
    missing = [m for m in ("polars", "duckdb") if importlib.util.find_spec(m) is None]
    if missing:  # the interop example needs them; the others still run
        blocks = [b for b in blocks if not b.startswith("# needs polars")]
    done = subprocess.run(
        [sys.executable, "-c", "\n".join(blocks)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "{'id': 1, 'shout': 'ADA', 'taxed': 24.0}" in done.stdout
    assert "inverse ZeroDivisionError" in done.stdout
