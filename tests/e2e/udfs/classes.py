"""Class UDFs for the end-to-end tests of `quiver run`."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import quiver

SETUPS = 0  # instances built in this worker process


@quiver.udf(returns="int64")
class Counted:
    """Returns, per row, the value plus ``amount``; its close() leaves a file in ``report_dir``."""

    def __init__(self, amount: int = 0, report_dir: str = "") -> None:
        global SETUPS
        SETUPS += 1
        self.amount = amount
        self.report_dir = report_dir
        self.batches = 0

    def __call__(self, value: pa.Array) -> pa.Array:
        self.batches += 1
        return pc.add(value, self.amount)

    def close(self) -> None:
        if self.report_dir:
            path = os.path.join(self.report_dir, f"closed-{os.getpid()}")
            with open(path, "w") as f:
                f.write(f"{SETUPS} {self.batches}\n")


@quiver.udf(returns="string")
class Labeller:
    """pandas flavour: prefix + name."""

    def __init__(self, prefix: str, upper: bool = False) -> None:
        self.prefix = prefix
        self.upper = upper

    def __call__(self, name: pd.Series) -> pd.Series:
        labels = self.prefix + name
        return labels.str.upper() if self.upper else labels


@quiver.udf(returns="int64")
class Numbered:
    """Iterator flavour: numbers the rows of an execution from ``start``."""

    def __init__(self, start: int = 0) -> None:
        self.start = start

    def __call__(self, batches: Iterator[tuple[pa.Array]]) -> Iterator[pa.Array]:
        next_number = self.start
        for (column,) in batches:
            yield pa.array(range(next_number, next_number + len(column)), pa.int64())
            next_number += len(column)


@quiver.udf(returns="int64")
class NeedsModel:
    """Its setup fails when the model file is missing."""

    def __init__(self, model_path: str) -> None:
        with open(model_path, "rb") as f:
            self.model = f.read()

    def __call__(self, value: pa.Array) -> pa.Array:
        return value
