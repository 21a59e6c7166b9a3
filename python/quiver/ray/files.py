"""The files of a ``quiver.ray`` job: which inputs, their formats, and how each is read and
written, with the same extensions and defaults as ``quiver run``."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from quiver.errors import InvalidInput

# Extensions and the formats they mean, as in quiver run (cpp/quiver/cli/file_format.cc).
EXTENSIONS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".arrow": "arrow",
    ".feather": "arrow",
    ".ipc": "arrow",
    ".arrows": "arrows",
}
# The extension each output format is written with.
OUTPUT_EXTENSIONS = {"parquet": ".parquet", "csv": ".csv", "arrow": ".arrow", "arrows": ".arrows"}


def list_inputs(sources: str | Iterable[str]) -> list[str]:
    """The input files of ``sources``: each a file, a directory (its files, not hidden ones
    and not ``_SUCCESS``-style markers, sorted) or a glob pattern (``data/*.parquet``)."""
    found: list[str] = []
    for source in [sources] if isinstance(sources, str) else list(sources):
        if os.path.isdir(source):
            names = sorted(
                n
                for n in os.listdir(source)
                if not n.startswith((".", "_")) and os.path.isfile(os.path.join(source, n))
            )
            if not names:
                raise InvalidInput(f"input directory {source} has no files")
            found += [os.path.join(source, n) for n in names]
        elif os.path.isfile(source):
            found.append(source)
        elif glob.has_magic(source):
            matches = sorted(p for p in glob.glob(source) if os.path.isfile(p))
            if not matches:
                raise InvalidInput(f"no file matches the pattern {source!r}")
            found += matches
        else:
            raise InvalidInput(
                f"input {source} does not exist (give a file, a directory or a glob)"
            )
    return [os.path.abspath(p) for p in found]


def input_format(path: str, given: str | None) -> str:
    """The format ``path`` is read in: ``given`` or the one its extension names."""
    if given:
        if given not in ("parquet", "csv", "arrow"):
            raise InvalidInput(f"unknown input format {given!r}; known: parquet, csv, arrow")
        return given
    extension = os.path.splitext(path)[1].lower()
    if extension not in EXTENSIONS:
        raise InvalidInput(
            f"cannot tell the format of input {path} from its extension; "
            "name it .parquet, .csv or .arrow, or give --input-format"
        )
    return "arrow" if EXTENSIONS[extension] == "arrows" else EXTENSIONS[extension]


def output_format(given: str | None) -> str:
    """The format outputs are written in: ``given``, else Parquet."""
    if given is None:
        return "parquet"
    if given not in OUTPUT_EXTENSIONS:
        raise InvalidInput(
            f"unknown output format {given!r} for a directory of outputs; "
            f"known: {', '.join(OUTPUT_EXTENSIONS)}"
        )
    return given


def output_names(inputs: list[str], fmt: str) -> list[str]:
    """One output file name per input: its stem and the output format's extension."""
    names = [os.path.splitext(os.path.basename(p))[0] + OUTPUT_EXTENSIONS[fmt] for p in inputs]
    seen: dict[str, str] = {}
    for path, name in zip(inputs, names, strict=True):
        if name in seen:
            raise InvalidInput(
                f"inputs {seen[name]} and {path} would both be written to {name}; "
                "rename one, or run them as two jobs"
            )
        seen[name] = path
    return names


def open_input(path: str, fmt: str, batch_rows: int) -> tuple[pa.RecordBatchReader, int | None]:
    """A stream of batches of at most ``batch_rows`` rows over ``path``, and its row count
    when the format records it."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        batches = parquet.iter_batches(batch_size=batch_rows)
        return pa.RecordBatchReader.from_batches(
            parquet.schema_arrow, batches
        ), parquet.metadata.num_rows
    if fmt == "csv":
        import pyarrow.csv as csv

        return csv.open_csv(path), None
    with open(path, "rb") as probe:
        is_file = probe.read(6) == b"ARROW1"
    if is_file:
        ipc = pa.ipc.open_file(path)
        batches = (ipc.get_batch(i) for i in range(ipc.num_record_batches))
        return pa.RecordBatchReader.from_batches(ipc.schema, batches), None
    return pa.ipc.open_stream(path), None


class OutputWriter:
    """Writes batches of one schema to ``path`` in ``fmt`` (Parquet with Snappy and the
    Arrow schema stored, as ``quiver run`` writes it)."""

    def __init__(self, path: str, fmt: str, schema: pa.Schema) -> None:
        self._sink: Any = None
        if fmt == "parquet":
            import pyarrow.parquet as pq

            self._writer: Any = pq.ParquetWriter(path, schema, compression="snappy")
        elif fmt == "csv":
            import pyarrow.csv as csv

            self._writer = csv.CSVWriter(path, schema)
        else:
            self._sink = pa.OSFile(path, "wb")
            make = pa.ipc.new_file if fmt == "arrow" else pa.ipc.new_stream
            self._writer = make(self._sink, schema)
        self._skip_empty = fmt == "parquet"

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0 and self._skip_empty:
            return
        self._writer.write_batch(batch)

    def close(self) -> None:
        self._writer.close()
        if self._sink is not None:
            self._sink.close()
