"""The benchmark table as Parquet: `id int32, name string, value float64, data string`.

`data` holds random strings of the scenario's length, drawn from 64 characters with a fixed
seed; the table is built chunk by chunk with numpy (no Python object per row) and cached
under bench/data/, keyed by scenario, scale and generator version.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quiver_bench.scenarios import Scenario

GENERATOR_VERSION = 1
SEED = 56350
# Bytes of `data` per chunk; each chunk is one Parquet row group.
CHUNK_BYTES = 64 << 20
_ALPHABET = np.frombuffer(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", dtype=np.uint8
)

SCHEMA = pa.schema(
    [
        pa.field("id", pa.int32()),
        pa.field("name", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("data", pa.string()),
    ]
)


def dataset_path(data_dir: Path, scenario: Scenario, scale: float) -> Path:
    """Return where the file of `scenario` at `scale` is cached."""
    return data_dir / f"{scenario.key}-scale{scale:g}-v{GENERATOR_VERSION}.parquet"


def ensure_dataset(data_dir: Path, scenario: Scenario, scale: float) -> Path:
    """Return the cached file of `scenario` at `scale`, writing it first when missing."""
    path = dataset_path(data_dir, scenario, scale)
    if not path.exists():
        write_table(path, scenario.scaled_rows(scale), scenario.length)
    return path


def write_table(path: Path, rows: int, length: int) -> None:
    """Write `rows` rows with `data` strings of `length` characters to `path`, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    rng = np.random.default_rng(SEED)
    with pq.ParquetWriter(temporary, SCHEMA, use_dictionary=False) as writer:
        for batch in _chunks(rng, rows, length):
            writer.write_batch(batch)
    os.replace(temporary, path)


def _chunks(rng: np.random.Generator, rows: int, length: int) -> Iterator[pa.RecordBatch]:
    chunk_rows = max(1, CHUNK_BYTES // max(1, length))
    for start in range(0, rows, chunk_rows):
        yield _chunk(rng, start, min(chunk_rows, rows - start), length)


def _chunk(rng: np.random.Generator, start: int, rows: int, length: int) -> pa.RecordBatch:
    ids = pa.array(np.arange(start, start + rows, dtype=np.int32))
    names = pc.binary_join_element_wise("name_", pc.cast(ids, pa.string()), "")
    values = pa.array(rng.random(rows))
    return pa.RecordBatch.from_arrays(
        [ids, names, values, random_strings(rng, rows, length)], schema=SCHEMA
    )


def random_strings(rng: np.random.Generator, rows: int, length: int) -> pa.Array:
    """Return `rows` random strings of `length` characters, built from two numpy buffers."""
    codes = np.frombuffer(rng.bytes(rows * length), dtype=np.uint8)
    characters = _ALPHABET[codes & 63]
    offsets = np.arange(0, (rows + 1) * length, length, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(characters)]
    )
