"""Declare the grouped and table kinds: grouped map, grouped aggregates (UDAFs), table functions.

::

    @quiver.grouped_map(returns="key int64, mean double")
    def normalise(group: pd.DataFrame) -> pd.DataFrame: ...      # or pa.Table -> pa.Table

    @quiver.udaf(returns="float64")
    def robust_mean(x: pd.Series) -> float: ...                   # simple form: a group's column(s)

    @quiver.udaf(returns="float64")
    class Mean:                                                   # partial form
        def init(self): return (0.0, 0)
        def update(self, state, x: pa.Array): ...
        def merge(self, a, b): ...
        def finish(self, state): ...

    @quiver.udtf(returns="struct<word: string, position: int32>")
    def words(text: str):                                         # a generator per input row
        for i, word in enumerate(text.split()):
            yield word, i

The engine runs them with ``quiver run --group-by K --apply``, ``--agg`` and ``--udtf``
(docs/grouped-map.md, docs/udaf.md, docs/udtf.md).
"""

from __future__ import annotations

import inspect
import sys
import typing
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from quiver.types import as_data_type
from quiver.udf import _requirement_list

GROUPED_MAP = "grouped_map"
UDAF = "udaf"
UDTF = "udtf"
FLAVOURS = ("arrow", "pandas")
PARTIAL_METHODS = ("init", "update", "merge", "finish")


class KindFunction:
    """A function (or, for a partial UDAF, an object or class) of a grouped or table kind.

    ``returns`` is a pa.Schema for a grouped map and a table function, a pa.DataType for a
    UDAF. Calling the object calls the function, so it can be tested in process.
    """

    def __init__(
        self,
        func: Any,
        kind: str,
        returns: Any,
        flavour: str,
        partial: bool = False,
        requirements: tuple[str, ...] = (),
    ):
        """Wrap ``func``; the arguments must already be validated."""
        self.func = func
        self.kind = kind
        self.returns = returns
        self.flavour = flavour
        self.partial = partial
        self.requirements = requirements
        """The packages its workers need (docs/environments.md; ``quiver.Session`` only)."""
        self.__doc__ = getattr(func, "__doc__", None)
        self.__name__ = getattr(func, "__name__", kind)
        self.__qualname__ = getattr(func, "__qualname__", self.__name__)
        self.__module__ = getattr(func, "__module__", __name__)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the wrapped function."""
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        """Show the function, its kind, flavour and result."""
        return f"<quiver.{self.kind} {self.__qualname__} returns={self.returns} ({self.flavour})>"


def parse_schema(returns: pa.Schema | pa.DataType | str) -> pa.Schema:
    """Return ``returns`` as a schema: "a int64, b string", "struct<a: int64>" or a pyarrow one."""
    if isinstance(returns, pa.Schema):
        return returns
    if isinstance(returns, str) and not returns.strip().startswith("struct<"):
        parts = _split_top_level(returns)
        fields = []
        for part in parts:
            name, _, type_text = part.strip().replace(":", " ", 1).partition(" ")
            if not name or not type_text.strip():
                raise ValueError(
                    f"returns={returns!r}: {part.strip()!r} is not 'NAME TYPE' (e.g. "
                    "'key int64, mean double')"
                )
            fields.append(pa.field(name, as_data_type(type_text.strip())))
        return pa.schema(fields)
    data_type = as_data_type(returns)
    if not pa.types.is_struct(data_type):
        raise ValueError(f"returns= must be a struct or a list of columns, not {data_type}")
    return pa.schema(list(data_type.fields))


def _split_top_level(text: str) -> list[str]:
    """Split at commas outside <...> and (...)."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "<(" and 1 or 0
        depth -= char in ">)" and 1 or 0
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return parts


def _flavour(func: Callable[..., Any], flavour: str | None, frames: bool) -> str:
    """Pick "pandas" or "arrow" from ``flavour=`` or the parameter hints (default arrow)."""
    if flavour is not None:
        if flavour not in FLAVOURS:
            raise ValueError(f"flavour= must be one of {', '.join(FLAVOURS)}, not {flavour!r}")
        return flavour
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # noqa: BLE001 - unresolvable hints: fall back to the default
        return "arrow"
    pandas = sys.modules.get("pandas")
    hints.pop("return", None)
    for hint in hints.values():
        if pandas is not None and isinstance(hint, type):
            if issubclass(hint, pandas.DataFrame if frames else pandas.Series):
                return "pandas"
    return "arrow"


def grouped_map(
    func: Callable[..., Any] | None = None,
    *,
    returns: pa.Schema | str,
    flavour: str | None = None,
    requirements: Sequence[str] = (),
) -> Any:
    """Declare a grouped map: ``f(group) -> table`` over all rows of one group.

    The group arrives as a pandas DataFrame when the parameter is hinted ``pd.DataFrame`` (or
    ``flavour="pandas"``), else as a pyarrow Table. The result (same kind, or a dict of
    columns) must hold the columns of ``returns`` ("name type, ..."); other columns are dropped.
    ``requirements`` runs it in an environment of its own under ``quiver.Session``, as for
    ``@quiver.udf`` (docs/environments.md).
    """
    schema = parse_schema(returns)
    reqs = _requirement_list(requirements)

    def decorate(function: Callable[..., Any]) -> KindFunction:
        if not callable(function):
            raise TypeError(f"@quiver.grouped_map decorates functions, not {type(function)}")
        chosen = _flavour(function, flavour, True)
        return KindFunction(function, GROUPED_MAP, schema, chosen, requirements=reqs)

    return decorate if func is None else decorate(func)


def udaf(
    func: Any = None,
    *,
    returns: pa.DataType | str,
    flavour: str | None = None,
    requirements: Sequence[str] = (),
) -> Any:
    """Declare a grouped aggregate (UDAF): one value per group.

    Simple form: a function of a group's argument columns (pa.Array, or pd.Series when hinted
    or ``flavour="pandas"``) returning one value. Partial form: a class (instantiated once
    per worker and execution, without arguments) or an object with ``init() -> state``,
    ``update(state, *columns) -> state``, ``merge(a, b) -> state`` and ``finish(state) ->
    value``; states must pickle. ``merge`` should be associative: the engine merges each
    worker's states first, then those results, so a non-associative merge gives results
    that depend on the number of workers (docs/udaf.md). ``requirements``: as for
    ``@quiver.grouped_map``.
    """
    return_type = as_data_type(returns)
    reqs = _requirement_list(requirements)

    def decorate(target: Any) -> KindFunction:
        missing = [name for name in PARTIAL_METHODS if not callable(getattr(target, name, None))]
        if len(missing) < len(PARTIAL_METHODS):  # some of the methods: meant as partial
            if missing:
                raise TypeError(
                    f"partial UDAF {getattr(target, '__name__', target)!r} lacks "
                    f"{', '.join(missing)}; it needs {', '.join(PARTIAL_METHODS)}"
                )
            chosen = _flavour(target.update, flavour, False)
            return KindFunction(target, UDAF, return_type, chosen, True, reqs)
        if not callable(target):
            raise TypeError(f"@quiver.udaf decorates functions or classes, not {type(target)}")
        chosen = _flavour(target, flavour, False)
        return KindFunction(target, UDAF, return_type, chosen, requirements=reqs)

    return decorate if func is None else decorate(func)


def udtf(
    func: Callable[..., Any] | None = None,
    *,
    returns: pa.DataType | pa.Schema | str,
    flavour: str | None = None,
    requirements: Sequence[str] = (),
) -> Any:
    """Declare a table function (UDTF): zero or more output rows per input row.

    A generator function is called once per input row with Python values and yields rows
    (tuples in the order of ``returns``' fields, dicts, or single values for one field). Any
    other function is called once per batch with the argument columns (pa.Array, or
    pd.Series when hinted) and returns ``(rows, index)``: the output rows (a pa.Table,
    RecordBatch, pd.DataFrame or dict of columns) and, per output row, the index of its input
    row in the batch (non-decreasing). ``requirements``: as for ``@quiver.grouped_map``.
    """
    schema = parse_schema(returns)
    reqs = _requirement_list(requirements)

    def decorate(function: Callable[..., Any]) -> KindFunction:
        if not callable(function):
            raise TypeError(f"@quiver.udtf decorates functions, not {type(function)}")
        chosen = "rows" if inspect.isgeneratorfunction(function) else None
        chosen = chosen or _flavour(function, flavour, False)
        return KindFunction(function, UDTF, schema, chosen, requirements=reqs)

    return decorate if func is None else decorate(func)
