"""Class UDFs for the worker tests: setup counted per process, close() logged."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

import quiver

SETUPS = 0  # how many instances this process built (module state survives executions)


@quiver.udf(returns="int64")
class Offset:
    """Adds ``amount`` to x; reports how many times a worker ran its setup."""

    def __init__(self, amount: int = 1) -> None:
        global SETUPS
        SETUPS += 1
        self.amount = amount
        self.calls = 0

    def __call__(self, x: pa.Array) -> pa.Array:
        self.calls += 1
        return pc.add(x, self.amount)

    def close(self) -> None:
        print(f"Offset(amount={self.amount}) closed after {self.calls} calls, pid {os.getpid()}")


@quiver.udf(returns="int64")
class SetupCount:
    """Returns, per row, how many class instances this worker process has built so far."""

    def __call__(self, x: pa.Array) -> pa.Array:
        return pa.array([SETUPS] * len(x), pa.int64())


@quiver.udf(returns="string")
class Suffix:
    """pandas flavour: appends a suffix."""

    def __init__(self, suffix: str = "!") -> None:
        self.suffix = suffix

    def __call__(self, s: pd.Series) -> pd.Series:
        return s + self.suffix


@quiver.udf(returns="int64")
class RunningTotal:
    """Iterator flavour: a running sum of x over the execution."""

    def __init__(self, start: int = 0) -> None:
        self.start = start

    def __call__(self, batches: Iterator[tuple[pa.Array]]) -> Iterator[pa.Array]:
        total = self.start
        for (x,) in batches:
            values = []
            for value in x.to_pylist():
                total += value or 0
                values.append(total)
            yield pa.array(values, pa.int64())


@quiver.udf(returns="int64")
class BrokenSetup:
    """Its setup fails: the worker reports a WorkerError naming the class."""

    def __init__(self, model_path: str = "/nonexistent/model.bin") -> None:
        with open(model_path, "rb") as f:
            self.model = f.read()

    def __call__(self, x: pa.Array) -> pa.Array:
        return x


@quiver.udf(returns="int64")
class BrokenClose:
    """Its close() raises: the worker logs it when it stops."""

    def __call__(self, x: pa.Array) -> pa.Array:
        return x

    def close(self) -> None:
        raise RuntimeError("cannot flush the model cache")
