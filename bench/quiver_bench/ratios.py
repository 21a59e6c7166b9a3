"""Ratios of median wall times measured in the same run.

"A vs B" is B's median divided by A's: how many times faster A was (above 1: A faster).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Ratio:
    """One ratio column: how many times faster `faster` is than `slower`."""

    key: str
    label: str
    faster: str
    slower: str


RATIOS: tuple[Ratio, ...] = (
    Ratio("spark-columnar-vs-rows", "Spark columnar vs row-based", "spark-columnar", "spark-rows"),
    Ratio("quiver-columnar-vs-rows", "quiver columnar vs rows", "quiver-columnar", "quiver-rows"),
    Ratio(
        "quiver-vs-spark-columnar", "quiver vs Spark columnar", "quiver-columnar", "spark-columnar"
    ),
    Ratio("quiver-vs-spark-rows", "quiver vs Spark row-based", "quiver-columnar", "spark-rows"),
    Ratio("quiver-vs-duckdb", "quiver vs DuckDB", "quiver-columnar", "duckdb"),
    Ratio("quiver-vs-polars", "quiver vs Polars", "quiver-columnar", "polars"),
    Ratio(
        "session-vs-spark-columnar",
        "quiver.Session vs Spark columnar",
        "quiver-session",
        "spark-columnar",
    ),
    Ratio("session-vs-polars", "quiver.Session vs Polars", "quiver-session", "polars"),
    Ratio("quiver-vs-daft-process", "quiver vs Daft process", "quiver-columnar", "daft-process"),
    Ratio("quiver-vs-daft-threads", "quiver vs Daft threads", "quiver-columnar", "daft-threads"),
    # Two quiver workers against the peers' own parallelism (the CPU-bound scenario's case).
    Ratio("quiver-2-vs-polars", "quiver 2 workers vs Polars", "quiver-2-workers", "polars"),
    Ratio("quiver-2-vs-duckdb", "quiver 2 workers vs DuckDB", "quiver-2-workers", "duckdb"),
    Ratio(
        "quiver-2-vs-daft-process",
        "quiver 2 workers vs Daft process",
        "quiver-2-workers",
        "daft-process",
    ),
    Ratio(
        "quiver-2-vs-spark-2", "quiver 2 workers vs Spark local[2]", "quiver-2-workers", "spark-2"
    ),
)


def median_of(peers: dict, key: str) -> float | None:
    """Return the median of a peer that ran, else None."""
    result = peers.get(key, {})
    return result.get("median_ms") if "error" not in result else None


def compute_ratios(peers: dict) -> dict[str, float | None]:
    """Return every ratio of one scenario; None when either side did not run."""
    ratios: dict[str, float | None] = {}
    for ratio in RATIOS:
        faster, slower = median_of(peers, ratio.faster), median_of(peers, ratio.slower)
        ratios[ratio.key] = round(slower / faster, 2) if faster and slower else None
    return ratios
