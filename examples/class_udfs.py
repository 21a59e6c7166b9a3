"""Example class UDFs (docs/class-udfs.md): set up once per worker, called per batch.

    quiver run examples/data/people.parquet \\
        --udf 'tier=examples/class_udfs.py:PriceTier(value)' --udf-arg 'tier.cutoffs=[25, 75]' \\
        --udf 'greeting=examples/class_udfs.py:Greeter(name)' --udf-arg 'greeting.word=Hello' \\
        -o examples/data/people_tiers.parquet
"""

import bisect
import os

import pandas as pd
import pyarrow as pa

import quiver


@quiver.udf(returns="string")
class PriceTier:
    """Put a price into a tier. ``__init__`` stands for loading a model: it runs once per worker."""

    def __init__(self, cutoffs: list[float] = (50.0,), names: list[str] | None = None) -> None:
        self.cutoffs = sorted(cutoffs)
        self.names = names or [f"tier {i}" for i in range(len(self.cutoffs) + 1)]
        print(f"PriceTier set up in worker {os.getpid()} with cutoffs {self.cutoffs}")

    def __call__(self, value: pa.Array) -> pa.Array:
        tiers = []
        for v in value.to_pylist():
            tiers.append(None if v is None else self.names[bisect.bisect(self.cutoffs, v)])
        return pa.array(tiers, pa.string())

    def close(self) -> None:
        print(f"PriceTier in worker {os.getpid()} closed")


@quiver.udf(returns="string")
class Greeter:
    """A pandas class UDF."""

    def __init__(self, word: str = "Hi") -> None:
        self.word = word

    def __call__(self, name: pd.Series) -> pd.Series:
        return self.word + ", " + name + "!"
