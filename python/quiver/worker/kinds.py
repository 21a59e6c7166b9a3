"""The worker side of the grouped and table kinds (docs/protocol.md, section 9).

An Init whose UDFs have eval type GROUPED_MAP, GROUPED_AGG, GROUPED_AGG_MERGE or
TABLE_FUNCTION is run here instead of column by column: the answer to a Data may have any
number of rows, and its schema is the kind's (a grouped map's declared schema, one value or
state per group, or a row index and the table function's columns).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from quiver._proto import pb
from quiver.kinds import GROUPED_MAP, UDAF, UDTF, KindFunction
from quiver.worker.errors import ProtocolViolation, WorkerFailure
from quiver.worker.evaluators import coerce_result
from quiver.worker.group_frames import (
    concat_columns,
    plain_labels,
    result_columns,
    split_frame,
)
from quiver.worker.loader import load_udf_object

KIND_EVAL_TYPES = {
    pb.GROUPED_MAP: GROUPED_MAP,
    pb.GROUPED_AGG: UDAF,
    pb.GROUPED_AGG_MERGE: UDAF,
    pb.TABLE_FUNCTION: UDTF,
}
# Field metadata of a partial UDAF's result field in the InitResponse of GROUPED_AGG.
AGG_FORM_KEY = b"quiver.agg_form"
ROW_INDEX = "__row"
# The most bytes the pickled partial states of one batch's groups may take: they travel in one
# binary column (32-bit offsets) of one result message.
MAX_STATES_BYTES = 2**31 - 2**16


def is_kind_init(init: pb.Init) -> bool:
    """Tell whether ``init`` runs a grouped or table kind."""
    return any(udf.eval_type in KIND_EVAL_TYPES for udf in init.udfs)


def group_bounds(column: pa.Array) -> list[tuple[int, int]]:
    """Return the (start, end) of each group of a batch's group column (runs of equal numbers)."""
    if column.type != pa.int32() or column.null_count:
        raise ProtocolViolation(
            f"column 0 of a grouped Data batch must be the int32 group number without nulls, "
            f"not {column.type} with {column.null_count} nulls"
        )
    if len(column) == 0:
        return []
    numbers = column.to_numpy(zero_copy_only=False)
    steps = np.diff(numbers)
    if (steps < 0).any():
        raise ProtocolViolation("the group numbers of a grouped Data batch decrease")
    starts = np.concatenate(([0], np.flatnonzero(steps) + 1))
    ends = np.concatenate((starts[1:], [len(numbers)]))
    return list(zip(starts.tolist(), ends.tolist(), strict=True))


class KindExecution:
    """The UDFs of one grouped or table-kind Init, loaded, and how to answer a batch."""

    def __init__(
        self,
        init: pb.Init,
        payloads: list[bytearray],
        input_schema: pa.Schema | None,
        call_user: Callable[..., Any],
    ) -> None:
        """Load every UDF of ``init``; they must share one eval type.

        ``payloads`` are the UDFs' payloads with every chunk appended; ``call_user(name, func,
        *args)`` runs user code, counting its time and wrapping what it raises as a UserError.
        """
        self.payloads = payloads
        self.input_schema = input_schema
        self._call = call_user
        eval_types = {udf.eval_type for udf in init.udfs}
        if len(eval_types) != 1:
            raise ProtocolViolation("an Init mixes grouped or table eval types with others")
        self.eval_type = eval_types.pop()
        self.kind = KIND_EVAL_TYPES[self.eval_type]
        self.udfs = [self._load(i, udf) for i, udf in enumerate(init.udfs)]
        if self.kind in (GROUPED_MAP, UDTF) and len(self.udfs) != 1:
            raise ProtocolViolation(f"an Init of a {self.kind} holds exactly one UDF")
        self.instances = [_instance(fn) if fn.partial else None for _, _, fn in self.udfs]
        self.result_schema = self._result_schema()

    def _load(self, index: int, definition: pb.UdfDefinition) -> tuple[str, tuple[int, ...], Any]:
        name = definition.name
        payload = bytes(self.payloads[index])
        obj = load_udf_object(name, definition.payload_format, payload)
        if not isinstance(obj, KindFunction) or obj.kind != self.kind:
            decorator = {GROUPED_MAP: "grouped_map", UDAF: "udaf", UDTF: "udtf"}[self.kind]
            raise WorkerFailure(
                f"UDF {name!r} is run as a {self.kind} but is not declared as one: decorate it "
                f"with @quiver.{decorator}(returns=...)",
                name,
            )
        width = len(self.input_schema or [])
        offsets = tuple(definition.argument_offsets)
        if any(offset < 0 or offset >= width for offset in offsets):
            raise ProtocolViolation(
                f"UDF {name!r} has argument offsets {list(offsets)} outside the input"
            )
        if self.eval_type == pb.GROUPED_AGG_MERGE and (len(offsets) != 2 or not obj.partial):
            raise WorkerFailure(
                f"UDF {name!r}: only a partial UDAF (init/update/merge/finish) merges states", name
            )
        return name, offsets, obj

    def _result_schema(self) -> pa.Schema:
        if self.kind == GROUPED_MAP:
            return self.udfs[0][2].returns
        if self.kind == UDTF:
            fields = list(self.udfs[0][2].returns)
            return pa.schema([pa.field(ROW_INDEX, pa.int32(), nullable=False), *fields])
        fields = []
        for name, _, fn in self.udfs:
            if fn.partial and self.eval_type == pb.GROUPED_AGG:
                fields.append(pa.field(name, pa.binary(), metadata={AGG_FORM_KEY: b"partial"}))
            else:
                fields.append(pa.field(name, fn.returns))
        return pa.schema(fields)

    # ---- batches ----

    def run(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Answer one Data batch with the kind's result batch."""
        if self.kind == UDTF:
            return self._table_function(batch)
        bounds = group_bounds(batch.column(0))
        if self.kind == GROUPED_MAP:
            return self._grouped_map(batch, bounds)
        columns = [self._aggregate(i, batch, bounds) for i in range(len(self.udfs))]
        return pa.RecordBatch.from_arrays(columns, schema=self.result_schema)

    def _grouped_map(self, batch: pa.RecordBatch, bounds: list[tuple[int, int]]) -> pa.RecordBatch:
        name, offsets, fn = self.udfs[0]
        data = batch.select(list(offsets))
        schema = self.result_schema
        if fn.flavour == "pandas":
            # One conversion per batch, a view per group, one join per batch (group_frames.py).
            frame = plain_labels(data.to_pandas())
            outputs, positions, checked = [], [], {}
            for group in split_frame(frame, bounds):
                result = _frame_result(self._call(name, fn.func, group), name)
                where = result_columns(result, schema.names, checked)
                if where is None:
                    _frame_columns(result, schema, name)  # raises, naming the missing columns
                outputs.append(result)
                positions.append(where)
            return _join_frames(outputs, positions, schema, name)
        table = pa.Table.from_batches([data])
        pieces = [
            _table_columns(self._call(name, fn.func, table.slice(s, e - s)), schema, name)
            for s, e in bounds
        ]
        return _concat_tables(pieces, schema, name)

    def _aggregate(
        self, index: int, batch: pa.RecordBatch, bounds: list[tuple[int, int]]
    ) -> pa.Array:
        name, offsets, fn = self.udfs[index]
        if self.eval_type == pb.GROUPED_AGG_MERGE:
            return self._merge(index, batch, bounds)
        args = [batch.column(i) for i in offsets]
        if fn.flavour == "pandas":
            args = [arg.to_pandas() for arg in args]
        values = []
        instance = self.instances[index]
        states_bytes = 0
        for start, end in bounds:
            pieces = [_slice(arg, start, end) for arg in args]
            if instance is None:
                values.append(self._call(name, fn.func, *pieces))
            else:
                state = self._call(name, instance.init)
                state = self._call(name, instance.update, state, *pieces)
                values.append(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))
                states_bytes += len(values[-1])
                # Checked group by group: a state too large fails at once, not after the rest.
                _check_states_size(name, states_bytes, len(values), len(bounds), len(values[-1]))
        field = self.result_schema.field(index)
        return _values_array(values, field.type, name)

    def _merge(self, index: int, batch: pa.RecordBatch, bounds: list[tuple[int, int]]) -> pa.Array:
        """Fold each group's states: each worker's (partition's) in order, then those results."""
        name, (partition_at, state_at), _ = self.udfs[index]
        instance = self.instances[index]
        partitions = batch.column(partition_at).to_pylist()
        states = batch.column(state_at).to_pylist()
        values = []
        for start, end in bounds:
            merged = []  # one state per partition, in order
            current = None
            for row in range(start, end):
                state = _unpickle(states[row], name)
                if current is not None and partitions[row] == current:
                    merged[-1] = self._call(name, instance.merge, merged[-1], state)
                else:
                    merged.append(state)
                    current = partitions[row]
            total = merged[0]
            for state in merged[1:]:
                total = self._call(name, instance.merge, total, state)
            values.append(self._call(name, instance.finish, total))
        return _values_array(values, self.result_schema.field(index).type, name)

    def _table_function(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        name, offsets, fn = self.udfs[0]
        args = [batch.column(i) for i in offsets]
        fields = list(fn.returns)
        if fn.flavour == "rows":
            index, columns = self._rows(name, fn.func, args, fields)
        else:
            if fn.flavour == "pandas":
                args = [arg.to_pandas() for arg in args]
            result = self._call(name, fn.func, *args)
            if not isinstance(result, tuple) or len(result) != 2:
                raise WorkerFailure(
                    f"UDTF {name!r} returned {type(result).__name__}; a batch UDTF returns "
                    "(rows, index): its output rows and each one's input row",
                    name,
                )
            rows, index = result
            table = _table_columns(rows, pa.schema(fields), name)
            columns = [table.column(i).combine_chunks() for i in range(len(fields))]
        try:
            index_array = pa.array(index, type=pa.int32())
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as exc:
            raise WorkerFailure(
                f"UDTF {name!r} returned row indices that are not int32: {exc}", name
            ) from exc
        if any(len(column) != len(index_array) for column in columns):
            raise WorkerFailure(
                f"UDTF {name!r} returned {len(index_array)} row indices for "
                f"{len(columns[0]) if columns else 0} rows",
                name,
            )
        return pa.RecordBatch.from_arrays([index_array, *columns], schema=self.result_schema)

    def _rows(
        self, name: str, func: Callable[..., Any], args: list[pa.Array], fields: list[pa.Field]
    ) -> tuple[list[int], list[pa.Array]]:
        values = [arg.to_pylist() for arg in args]
        index: list[int] = []
        out: list[list[Any]] = [[] for _ in fields]
        width = len(fields)

        def collect(row: int) -> None:
            for item in func(*(column[row] for column in values)):
                if isinstance(item, dict):
                    item = tuple(item.get(field.name) for field in fields)
                elif not isinstance(item, tuple):
                    item = (item,)
                if len(item) != width:
                    raise WorkerFailure(
                        f"UDTF {name!r} yielded a row of {len(item)} values for its {width} "
                        "columns",
                        name,
                    )
                index.append(row)
                for column, value in zip(out, item, strict=True):
                    column.append(value)

        for row in range(len(args[0]) if args else 0):
            self._call(name, collect, row)
        columns = [
            _coerce(column, field.type, name, len(index))
            for column, field in zip(out, fields, strict=True)
        ]
        return index, columns


def _coerce(value: Any, data_type: pa.DataType, name: str, rows: int) -> pa.Array:
    """A column of a result as an Array of ``data_type`` (the rules of docs/types.md)."""
    if isinstance(value, pa.ChunkedArray):
        value = value.combine_chunks()
    array = coerce_result(value, data_type, name, rows)
    return array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array


def _instance(fn: KindFunction) -> Any:
    """Instantiate a partial UDAF's class once per execution (an object is used as it is)."""
    return fn.func() if isinstance(fn.func, type) else fn.func


def _slice(arg: Any, start: int, end: int) -> Any:
    return arg.iloc[start:end] if hasattr(arg, "iloc") else arg.slice(start, end - start)


def _check_states_size(name: str, size: int, groups: int, of_groups: int, last: int) -> None:
    """Raise WorkerFailure when the partial states pickled so far exceed MAX_STATES_BYTES."""
    if size <= MAX_STATES_BYTES:
        return
    raise WorkerFailure(
        f"UDAF {name!r}: the partial states of {groups} of this batch's {of_groups} groups take "
        f"{_gib(size)} pickled (the last one {_gib(last)}), over the limit of "
        f"{_gib(MAX_STATES_BYTES)} for the states of one batch (one binary column of one "
        "message); keep a smaller state in update(), a summary of the rows (sums, counts, "
        "sketches) rather than the rows themselves",
        name,
    )


def _gib(size: int) -> str:
    """Say a byte count in GiB and exactly."""
    return f"{size / 2**30:.2f} GiB ({size:,} bytes)"


def _unpickle(data: bytes | None, name: str) -> Any:
    if data is None:
        raise ProtocolViolation(f"a null state for UDAF {name!r}")
    return pickle.loads(data)  # noqa: S301 - states come from this UDAF's own workers


def _values_array(values: list[Any], data_type: pa.DataType, name: str) -> pa.Array:
    """One value per group, as an array of ``data_type``."""
    values = [v.item() if isinstance(v, np.generic) else v for v in values]
    if pa.types.is_binary(data_type) and all(isinstance(v, bytes) for v in values):
        return pa.array(values, type=pa.binary())
    return _coerce(values, data_type, name, len(values))


def _frame_result(result: Any, name: str) -> Any:
    """A pandas grouped-map result as a DataFrame (a dict of columns becomes one)."""
    import pandas as pd

    if isinstance(result, dict):
        result = pd.DataFrame(result)
    if not isinstance(result, pd.DataFrame):
        raise WorkerFailure(
            f"grouped map {name!r} returned {type(result).__name__}; it returns a pandas "
            "DataFrame with the columns of its returns=",
            name,
        )
    return result


def _frame_columns(result: Any, schema: pa.Schema, name: str) -> Any:
    """Check that a pandas grouped-map result holds the declared columns; keep only those."""
    result = _frame_result(result, name)
    if list(result.columns) == schema.names:
        return result  # already as declared: selecting would copy for nothing
    missing = [n for n in schema.names if n not in result.columns]
    if missing:
        raise WorkerFailure(
            f"grouped map {name!r} returned columns {list(result.columns)}, without "
            f"{missing} of its returns= ({schema})",
            name,
        )
    return result[schema.names]


def _join_frames(
    frames: list[Any], positions: list[list[int] | None], schema: pa.Schema, name: str
) -> pa.RecordBatch:
    """The batch of a grouped map's results: column by column, else through ``pd.concat``."""
    arrays = concat_columns(frames, positions, len(schema)) if frames else None
    if arrays is None:
        return _concat_frames([_frame_columns(f, schema, name) for f in frames], schema, name)
    rows = len(arrays[0]) if arrays else 0
    columns = [_coerce(a, field.type, name, rows) for a, field in zip(arrays, schema, strict=True)]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _concat_frames(frames: list[Any], schema: pa.Schema, name: str) -> pa.RecordBatch:
    import pandas as pd

    if not frames:
        return pa.RecordBatch.from_pylist([], schema=schema)
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    columns = [_coerce(frame[field.name], field.type, name, len(frame)) for field in schema]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _table_columns(result: Any, schema: pa.Schema, name: str) -> pa.Table:
    """Turn a result table (Arrow, pandas or dict) into a Table of exactly ``schema``."""
    if isinstance(result, pa.RecordBatch):
        result = pa.Table.from_batches([result])
    elif isinstance(result, dict):
        result = pa.table(result) if result else pa.table({n: [] for n in schema.names})
    elif not isinstance(result, pa.Table):
        import sys

        pandas = sys.modules.get("pandas")
        if pandas is None or not isinstance(result, pandas.DataFrame):
            raise WorkerFailure(
                f"{name!r} returned {type(result).__name__}; expected a pyarrow Table, "
                "RecordBatch, pandas DataFrame or dict of columns",
                name,
            )
        frame = _frame_columns(result, schema, name)
        arrays = [_coerce(frame[f.name], f.type, name, len(frame)) for f in schema]
        return pa.Table.from_arrays(arrays, schema=schema)
    missing = [n for n in schema.names if n not in result.column_names]
    if missing:
        raise WorkerFailure(
            f"{name!r} returned columns {result.column_names}, without {missing} of its "
            f"returns= ({schema})",
            name,
        )
    arrays = [_coerce(result.column(f.name), f.type, name, result.num_rows) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _concat_tables(tables: list[pa.Table], schema: pa.Schema, name: str) -> pa.RecordBatch:
    if not tables:
        return pa.RecordBatch.from_pylist([], schema=schema)
    table = pa.concat_tables(tables).combine_chunks()
    arrays = [table.column(i).combine_chunks() for i in range(table.num_columns)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
