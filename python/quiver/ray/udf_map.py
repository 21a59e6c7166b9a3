"""``quiver.ray.UdfMap``: quiver UDFs as a Ray Data ``map_batches`` callable class.

Ray Data starts one actor per instance of a callable class; each :class:`UdfMap` actor holds
one warm :class:`quiver.Session`, so its worker processes start once per actor and serve
every batch Ray hands that actor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from quiver.errors import InvalidInput, QuiverError
from quiver.session import Session, UdfCall, call


class UdfMap:
    """Run quiver UDFs over Ray Data batches, one warm :class:`quiver.Session` per actor.

    Use it as the callable class of ``Dataset.map_batches``; Ray builds it in each actor from
    ``fn_constructor_kwargs``::

        import ray, quiver, quiver.ray

        ds = ray.data.read_parquet("events/")
        ds = ds.map_batches(
            quiver.ray.UdfMap,
            fn_constructor_kwargs={"udfs": [quiver.call(clean, "city")], "workers": 2},
            batch_format="pyarrow", concurrency=(1, 8), num_cpus=2)
        ds.write_parquet("out/")

    ``udfs`` are :func:`quiver.call` results, made on the driver: a function defined in the
    driver's ``__main__`` travels by value; a ``"file.py:func"`` reference is made absolute
    there, so that file must exist at that path on every node (a shared file system, or the
    same image). ``workers``, ``transport``, ``batch_timeout`` and ``python`` are the
    session's (see :class:`quiver.Session`); ``batch_rows`` and ``select`` those of
    :meth:`quiver.Session.map`.

    Each call maps one batch and returns it whole, with the UDF columns after the kept
    input columns. A batch whose quiver worker died (:class:`quiver.WorkerCrashed`, or any
    error marked ``retryable``) is run again on a fresh worker, up to ``retries`` times:
    the batch is in the actor's memory and nothing of the failed attempt was returned, so
    no row is lost or doubled. Other errors (:class:`quiver.UdfError`, ...) are raised as
    they are, and Ray Data fails the job with them.

    Batches may be ``pyarrow`` tables (``batch_format="pyarrow"``, no conversion), pandas
    DataFrames or dicts of NumPy arrays; the result has the same format.
    """

    def __init__(
        self,
        udfs: Sequence[UdfCall | Callable[..., Any] | str],
        workers: int = 1,
        *,
        transport: str = "uds",
        batch_timeout: float = 60,
        batch_rows: int = 65536,
        select: Sequence[str] | None = None,
        retries: int = 2,
        python: str | None = None,
        environment: dict[str, str] | None = None,
    ) -> None:
        if retries < 0:
            raise InvalidInput(f"retries must be 0 or more, not {retries}")
        self._calls = [u if isinstance(u, UdfCall) else call(u) for u in udfs]
        if not self._calls:
            raise InvalidInput("quiver.ray.UdfMap needs at least one UDF in udfs=[...]")
        self._batch_rows = batch_rows
        self._select = None if select is None else list(select)
        self._retries = retries
        self._session = Session(
            workers=workers,
            transport=transport,
            batch_timeout=batch_timeout,
            python=python,
            environment=environment,
        )
        self.batches_retried = 0

    def __call__(self, batch: Any) -> Any:
        """Map one batch through the UDFs; return the result in the batch's own format."""
        table, back = _as_table(batch)
        return back(self.map_table(table))

    def map_table(self, table: pa.Table) -> pa.Table:
        """Map a whole table, retrying it on a fresh worker when one died under it."""
        attempt = 0
        while True:
            try:
                return self._session.map(
                    table, udfs=self._calls, batch_rows=self._batch_rows, select=self._select
                ).read_all()
            except QuiverError as error:
                if not error.retryable or attempt >= self._retries:
                    raise
                attempt += 1
                self.batches_retried += 1

    def close(self) -> None:
        """Stop this actor's quiver workers (also done when the actor ends)."""
        self._session.close()

    def __del__(self) -> None:
        session = getattr(self, "_session", None)
        if session is not None:
            session.close()


def _as_table(batch: Any) -> tuple[pa.Table, Callable[[pa.Table], Any]]:
    """The batch as a pyarrow Table, and how to turn a result back into its format."""
    if isinstance(batch, pa.Table):
        return batch, lambda table: table
    if isinstance(batch, pa.RecordBatch):
        return pa.Table.from_batches([batch]), lambda table: table
    if isinstance(batch, dict):
        return pa.table(batch), lambda table: {
            name: column.to_numpy(zero_copy_only=False)
            for name, column in zip(table.column_names, table.columns, strict=True)
        }
    import pandas as pd

    if isinstance(batch, pd.DataFrame):
        return pa.Table.from_pandas(batch, preserve_index=False), lambda table: table.to_pandas()
    raise TypeError(
        f"quiver.ray.UdfMap takes pyarrow, pandas or numpy batches (batch_format='pyarrow' "
        f"is the fastest), not {type(batch).__module__}.{type(batch).__qualname__}"
    )
