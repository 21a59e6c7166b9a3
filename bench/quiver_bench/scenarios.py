"""The seed's five scenarios (SPARK-56350) and the peers that run them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    """One table shape and one UDF: `rows` at scale 1.0, strings of `length` characters."""

    key: str
    label: str
    rows: int
    length: int
    udf: str  # function name in bench/udfs.py
    arguments: tuple[str, ...]

    def scaled_rows(self, scale: float) -> int:
        """Return the row count at `scale` (at least one row)."""
        return max(1, round(self.rows * scale))


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("concat-2m-200", "string concat", 2_000_000, 200, "concat", ("name", "data")),
    Scenario("identity-1m-1000", "string identity", 1_000_000, 1000, "identity", ("data",)),
    Scenario("identity-2m-200", "string identity", 2_000_000, 200, "identity", ("data",)),
    Scenario("identity-10m-100", "string identity", 10_000_000, 100, "identity", ("data",)),
    Scenario("identity-20m-100", "string identity", 20_000_000, 100, "identity", ("data",)),
    # A UDF that costs CPU (pure Python per row): here worker processes run in parallel,
    # while an in-process peer's Python UDF holds the GIL.
    Scenario("normalize-1m-100", "string normalise (CPU)", 1_000_000, 100, "normalize", ("data",)),
)

# The scenario whose UDF costs CPU: quiver's 2-worker peer and Spark local[2] are for it.
CPU_SCENARIO = "normalize-1m-100"

# The scenario whose engine memory is measured at two scales.
LARGEST_SCENARIO = "identity-20m-100"


@dataclass(frozen=True)
class Peer:
    """One system (and mode) that runs the UDF: `kind` picks the runner, `mode` its setting."""

    key: str
    label: str
    kind: str
    mode: str = ""
    # Role of the peer's own process in the memory figures (see quiver_bench.rss).
    root_role: str = "driver"
    # Workers (processes or threads) of this peer; 0: the harness's --workers.
    workers: int = 0

    def workers_or(self, default: int) -> int:
        """Return this peer's own worker count, else `default` (the harness's --workers)."""
        return self.workers or default


PEERS: tuple[Peer, ...] = (
    Peer("quiver-columnar", "quiver columnar", "quiver", "columnar", "launcher"),
    # As quiver-columnar, but every run starts its worker itself (--no-daemon): the cold figure.
    Peer("quiver-cold", "quiver columnar, no fork server", "quiver", "columnar-cold", "launcher"),
    # As quiver-columnar, over the shared-memory transport (--transport shm).
    Peer("quiver-shm", "quiver columnar, shm", "quiver", "columnar-shm", "launcher"),
    Peer("quiver-rows", "quiver rows", "quiver", "rows", "launcher"),
    # As quiver-columnar with two workers always: the CPU-bound scenario's parallel figure.
    Peer("quiver-2-workers", "quiver, 2 workers", "quiver", "columnar", "launcher", workers=2),
    Peer("quiver-session", "quiver.Session (warm)", "quiver-session", "columnar", "engine"),
    Peer("spark-columnar", "Spark columnar", "spark", "true"),
    Peer("spark-rows", "Spark row-based", "spark", "false"),
    Peer("spark-2", "Spark columnar local[2]", "spark", "true", workers=2),
    Peer("duckdb", "DuckDB", "duckdb", root_role="engine"),
    Peer("polars", "Polars", "polars", root_role="engine"),
    # Daft's batch UDFs: out of process (its own worker processes) and on threads.
    Peer("daft-process", "Daft process UDF", "daft", "process", "engine"),
    Peer("daft-threads", "Daft thread UDF", "daft", "threads", "engine"),
)


def pick(items: tuple, keys: str | None, what: str) -> list:
    """Return the items whose keys are in the comma-separated `keys` (all when None)."""
    if not keys:
        return list(items)
    wanted = [key.strip() for key in keys.split(",") if key.strip()]
    known = {item.key: item for item in items}
    unknown = [key for key in wanted if key not in known]
    if unknown:
        raise ValueError(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(known)})")
    return [known[key] for key in wanted]


def human_count(count: int) -> str:
    """Return 2000000 as "2M", 20000 as "20K", 150 as "150"."""
    for divisor, suffix in ((1_000_000, "M"), (1_000, "K")):
        if count >= divisor:
            value = count / divisor
            return f"{value:.0f}{suffix}" if value == int(value) else f"{value:.1f}{suffix}"
    return str(count)
