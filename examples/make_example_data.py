"""Write the example dataset examples/data/people.parquet: 10,000 generated people.

The rows are generated with a fixed seed, so every run writes the same file:
id (int32), name (string), value (float64), city (string).

    python examples/make_example_data.py [OUTPUT]
"""

import random
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROWS = 10_000
SEED = 20240601
FIRST_NAMES = [
    "ada",
    "grace",
    "alan",
    "edsger",
    "barbara",
    "ken",
    "margaret",
    "linus",
    "frances",
]
LAST_NAMES = [
    "lovelace",
    "hopper",
    "turing",
    "dijkstra",
    "liskov",
    "thompson",
    "hamilton",
]
CITIES = ["Paris", "Tokyo", "Lima", "Oslo", "Accra", "Montréal", "Pune"]


def make_people(rows: int = ROWS, seed: int = SEED) -> pa.Table:
    """Return `rows` generated people; the same seed gives the same table."""
    rng = random.Random(seed)
    return pa.table(
        {
            "id": pa.array(range(1, rows + 1), pa.int32()),
            "name": pa.array(
                [f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}" for _ in range(rows)],
                pa.string(),
            ),
            "value": pa.array([round(rng.uniform(1, 500), 2) for _ in range(rows)], pa.float64()),
            "city": pa.array([rng.choice(CITIES) for _ in range(rows)], pa.string()),
        }
    )


def main() -> None:
    default = Path(__file__).resolve().parent / "data" / "people.parquet"
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else default
    output.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(make_people(), output)
    print(f"wrote {ROWS:,} rows to {output}")


if __name__ == "__main__":
    main()
