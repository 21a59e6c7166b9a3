"""A UDF call (:class:`UdfCall`, made by :func:`quiver.call`) and how a run hands it and its data
to the engine: the call's arguments as serialized Arrow expressions, the input as an Arrow C
stream, and the engine's result batches read back.

``quiver.Session`` and its grouped and table kinds both build their runs from these.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from quiver.errors import InvalidInput

PYTHON_REF = "python/ref"
PYTHON_CLOUDPICKLE = "python/cloudpickle"


@dataclass(frozen=True)
class UdfCall:
    """One UDF applied to arguments; made by :func:`quiver.call`.

    ``name`` is the result column, ``payload_format`` and ``payload`` how the worker finds the
    function (``python/ref``: ``"module:qualname"`` or ``"/abs/file.py:func"``;
    ``python/cloudpickle``: the function by value), ``arguments`` the column names, literals
    and ``pyarrow.compute`` expressions it is called with.
    """

    name: str
    payload_format: str
    payload: bytes
    arguments: tuple[Any, ...]
    constructor_args: str = ""
    """A class UDF's constructor keyword arguments, as a JSON object ("" for none)."""
    requirements: tuple[str, ...] = ()
    """The packages the UDF's workers need (docs/environments.md); () runs it here."""
    kind: str = ""
    """What ``fn`` was declared as: "scalar" (``@quiver.udf``), a kind of ``quiver.kinds``
    ("grouped_map", "udaf", "udtf"), or "" when not known here (a "file.py:func" string)."""
    sandbox: tuple[str, ...] | None = None
    """None, or the paths the UDF's sandboxed worker may read (``@quiver.udf(sandbox=...)``:
    its file's folder and the paths it declares); it then runs on sandboxed workers."""


def call(
    fn: Callable[..., Any] | str,
    *args: Any,
    name: str | None = None,
    init: dict[str, Any] | None = None,
    **policy: Any,
) -> UdfCall:
    """Return a call of UDF ``fn`` on ``args`` for :meth:`Session.map`.

    ``fn`` is one of:

    - a function (usually ``@quiver.udf``-decorated) that workers can import by module and
      qualified name: sent by reference;
    - a function defined in ``__main__``, a notebook or another function: sent by value
      (cloudpickle), so it needs nothing importable;
    - a string ``"path/to/file.py:func"`` or ``"package.module:func"``.

    Each argument is a column name (``"city"``), a ``pyarrow.compute`` expression
    (``pc.field("a") + 1``, ``pc.utf8_upper(pc.field("name"))``) or any other value, taken
    as a literal (use ``pc.scalar("text")`` for a string literal). ``name`` is the result
    column (default: the function's name).

    A class UDF (``@quiver.udf`` on a class, docs/class-udfs.md) takes its constructor's
    keyword arguments from ``init`` (JSON values: numbers, strings, lists, dicts, ...) or from
    ``Model.bind(**kwargs)`` (any picklable values).

    ``max_concurrency``, ``retries``, ``on_error`` and ``timeout`` override the ones the UDF
    was declared with, for this call (docs/async-udfs.md); the UDF then goes by value.

    >>> quiver.call("udfs.py:clean", "city", name="city_clean")    # doctest: +SKIP
    >>> quiver.call(Model, "text", init={"path": "model.bin"})      # doctest: +SKIP
    """
    from quiver.envs import declared_requirements, declared_sandbox, normalise
    from quiver.kinds import KindFunction
    from quiver.udf import UserDefinedFunction

    init_text = _init_json(init) if init else ""
    kind = fn.kind if isinstance(fn, KindFunction) else ""
    kind = "scalar" if isinstance(fn, UserDefinedFunction) else kind
    if isinstance(fn, str):
        if policy:
            raise TypeError(
                f"quiver.call({fn!r}, ..., {', '.join(policy)}=...): per-call options need the "
                "UDF object; import it and pass it, or declare them in its @quiver.udf"
            )
        payload_format, payload, default_name = PYTHON_REF, *_resolve_ref(fn)
        requirements = declared_requirements(payload.decode())
        sandbox = declared_sandbox(payload.decode())
    elif callable(fn):
        declares = isinstance(fn, (UserDefinedFunction, KindFunction))
        requirements = fn.requirements if declares else ()
        sandbox = _sandbox_of(fn) if isinstance(fn, UserDefinedFunction) else None
        bound = _bound_as_json(fn) if isinstance(fn, UserDefinedFunction) else None
        if bound is not None:  # by reference to the class, with its arguments beside it
            fn, init_text = bound[0], _merged_json(bound[1], init_text)
        if policy:
            fn = _with_policy(fn, policy)
        payload_format, payload, default_name = _resolve_function(fn)
    else:
        raise TypeError(
            f"quiver.call takes a function or a 'file.py:func' string, not {type(fn).__name__}"
        )
    return UdfCall(
        name or default_name,
        payload_format,
        payload,
        tuple(args),
        init_text,
        normalise(requirements),
        kind,
        sandbox,
    )


def _sandbox_of(fn: Any) -> tuple[str, ...] | None:
    """What a ``@quiver.udf(sandbox=...)`` object's sandboxed worker may read: the folder of
    the file that defines it and the paths it declares; None when it declares no sandbox."""
    declared = getattr(fn, "sandbox", None)
    if declared is None:
        return None
    try:
        source = inspect.getsourcefile(fn.func)
    except TypeError:
        source = None
    return (*([os.path.dirname(os.path.abspath(source))] if source else []), *declared)


def _with_policy(fn: Any, policy: dict[str, Any]) -> Any:
    """Return ``fn`` with per-call options (checked now, before any worker starts)."""
    from quiver.udf import UserDefinedFunction

    allowed = ("max_concurrency", "retries", "on_error", "timeout")
    unknown = [key for key in policy if key not in allowed]
    if unknown:
        raise TypeError(
            f"quiver.call got unexpected keyword argument(s) {', '.join(unknown)}; it takes "
            f"name=, init= and the per-call options {', '.join(allowed)}"
        )
    if not isinstance(fn, UserDefinedFunction):
        raise TypeError(
            f"quiver.call(..., {', '.join(policy)}=...) takes a @quiver.udf function, "
            f"not {type(fn).__name__}"
        )
    return fn.with_policy(**policy)


def _init_json(init: dict[str, Any]) -> str:
    """Encode a class UDF's constructor arguments as a JSON object."""
    if not isinstance(init, dict) or not all(isinstance(k, str) for k in init):
        raise TypeError(f"init= takes a dict of keyword arguments, not {init!r}")
    try:
        return json.dumps(init)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"init= values must be JSON values ({exc}); pass other objects with "
            "quiver.call(Model.bind(**kwargs), ...), which pickles them"
        ) from None


def _merged_json(first: dict[str, Any], second_text: str) -> str:
    """Merge two sets of constructor arguments (the second wins) into JSON text."""
    merged = {**first, **(json.loads(second_text) if second_text else {})}
    return json.dumps(merged) if merged else ""


def _bound_as_json(fn: Any) -> tuple[Any, dict[str, Any]] | None:
    """For ``Model.bind(...)`` with JSON arguments, return the unbound UDF and the arguments.

    The unbound one can then go by reference; None when there are no arguments or they are
    not JSON (the bound object then goes by value, arguments and all).
    """
    if not fn.init_kwargs:
        return None
    try:
        json.dumps(fn.init_kwargs)
    except (TypeError, ValueError):
        return None
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    unbound = module
    for part in (getattr(fn, "__qualname__", "") or "<none>").split("."):
        unbound = getattr(unbound, part, None)
    if getattr(unbound, "func", None) is not fn.func:
        return None
    return unbound, fn.init_kwargs


def _resolve_ref(ref: str) -> tuple[bytes, str]:
    """Check a ``file.py:func`` or ``module:func`` reference; return its payload and name."""
    target, sep, qualname = ref.rpartition(":")
    if not sep or not target or not qualname:
        raise InvalidInput(
            f"UDF reference {ref!r} is not of the form 'path/to/file.py:func' or 'module:func'"
        )
    if target.endswith(".py") or os.sep in target:
        path = os.path.abspath(target)
        if not os.path.isfile(path):
            raise InvalidInput(f"UDF reference {ref!r}: there is no file {path}")
        return f"{path}:{qualname}".encode(), qualname.rsplit(".", 1)[-1]
    if importlib.util.find_spec(target) is None:
        raise InvalidInput(
            f"UDF reference {ref!r}: module {target!r} cannot be imported here "
            "(check its spelling and sys.path)"
        )
    return ref.encode(), qualname.rsplit(".", 1)[-1]


def _resolve_function(fn: Callable[..., Any]) -> tuple[str, bytes, str]:
    """Send ``fn`` by reference when a worker can import it as itself, else by value."""
    module = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    name = getattr(fn, "__name__", None) or "udf"
    if module and qualname and module != "__main__" and "<" not in qualname:
        if _importable_as(fn, module, qualname):
            return PYTHON_REF, f"{module}:{qualname}".encode(), name
    import cloudpickle

    return PYTHON_CLOUDPICKLE, cloudpickle.dumps(fn), name


def _importable_as(fn: Any, module: str, qualname: str) -> bool:
    """Return whether ``module:qualname`` names ``fn`` itself."""
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except Exception:
        return False
    return obj is fn


def argument_expression(argument: Any) -> pc.Expression:
    """A column name, an expression, or a literal, as an Arrow compute expression."""
    if isinstance(argument, pc.Expression):
        return argument
    if isinstance(argument, str):
        return pc.field(argument)
    return pc.scalar(argument)


def serialized_expression(expression: pc.Expression) -> bytes:
    """The expression in Arrow's own serialization (``arrow::compute::Serialize``)."""
    _, (buffer,) = expression.__reduce__()
    return buffer.to_pybytes()


def stream_capsule(data: Any, method: str = "map") -> Any:
    """Return an ``arrow_array_stream`` capsule over ``data`` without copying its columns."""
    if hasattr(data, "__arrow_c_stream__"):
        return data.__arrow_c_stream__()
    import pyarrow.dataset as ds

    if isinstance(data, ds.Dataset):
        scanner = data.scanner(batch_size=_batch_rows_of(data, DATASET_BATCH_BYTES))
        return scanner.to_reader().__arrow_c_stream__()
    if isinstance(data, ds.Scanner):
        return data.to_reader().__arrow_c_stream__()
    if hasattr(data, "collect") and hasattr(data, "lazy"):  # a Polars LazyFrame
        return data.collect().__arrow_c_stream__()
    raise TypeError(
        f"Session.{method} needs Arrow data: an object with __arrow_c_stream__ (a pyarrow Table or "
        f"RecordBatchReader, a Polars DataFrame, a DuckDB relation, ...), a pyarrow Dataset "
        f"or Scanner; got {type(data).__module__}.{type(data).__qualname__}"
    )


#: About how many bytes of decoded data a batch read from a pyarrow Dataset holds: the size
#: ``quiver run`` cuts batches to (``--batch-bytes``). The scanner's own default (131072
#: rows) makes batches of tens of MB with long strings, which took a map 1.2-1.8x as long.
DATASET_BATCH_BYTES = 4 << 20


def _batch_rows_of(dataset: Any, size: int) -> int:
    """How many rows of ``dataset`` hold about ``size`` bytes decoded (at most 65536), from
    the first Parquet row group's metadata; 65536 when there is none to go by."""
    for fragment in dataset.get_fragments():
        metadata = getattr(fragment, "metadata", None)  # Parquet fragments only
        if metadata is None or metadata.num_row_groups == 0:
            break
        group = metadata.row_group(0)
        if group.num_rows == 0:
            break
        row_bytes = max(1, group.total_byte_size // group.num_rows)
        return max(1, min(65536, size // row_bytes))
    return 65536


def read_batches(run: Any) -> Iterator[pa.RecordBatch]:
    """Yield the run's batches; whatever stops the reading early ends the run."""
    try:
        while True:
            item = run.read_next()
            if item is None:
                return
            yield pa.RecordBatch._import_from_c_capsule(*item)
    finally:
        run.cancel()
