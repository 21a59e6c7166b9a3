"""Paths handed to ``quiver.Session``: files the engine reads with its own readers.

``Session.map("data.parquet", ...)`` (and ``apply``, ``aggregate``, ``flat_map``) reads the file
as ``quiver run data.parquet`` does: in the engine, without the GIL, Parquet row groups decoded
ahead on the cores the workers leave, only the columns the call uses, in batches of about
``batch_bytes``. The errors are the command's: a missing file names the closest one beside it, a
file that is not of its format says so.
"""

from __future__ import annotations

import os
from typing import Any

from quiver.errors import InvalidInput
from quiver.udf_call import stream_capsule


def engine_input(data: Any, method: str, input_format: str | None = None) -> Any:
    """What the engine's ``method`` reads: ``_engine.InputPaths`` for a path or a list of
    paths, else the Arrow C stream of ``data``."""
    paths = input_paths(data)
    if paths is None:
        if input_format is not None:
            raise InvalidInput(
                f"input_format= names the format of files; Session.{method} got "
                f"{type(data).__module__}.{type(data).__qualname__}, not a path"
            )
        return stream_capsule(data, method)
    from quiver import _engine

    return _engine.InputPaths(paths, input_format)


def input_paths(data: Any) -> list[str] | None:
    """The paths ``data`` names (a str or os.PathLike, or a non-empty list or tuple of them),
    else None."""
    if isinstance(data, (str, os.PathLike)):
        return [_path(data)]
    if isinstance(data, (list, tuple)) and data:
        if all(isinstance(item, (str, os.PathLike)) for item in data):
            return [_path(item) for item in data]
    return None


def _path(item: str | os.PathLike[str]) -> str:
    path = os.fspath(item)
    if not isinstance(path, str):  # a bytes path
        raise InvalidInput(f"input paths are str or os.PathLike of str, not {path!r}")
    return path
