"""Declare user-defined functions: the ``@quiver.udf`` decorator and eval-type inference."""

from __future__ import annotations

import collections.abc
import functools
import inspect
import os
import sys
import typing
from collections.abc import Callable, Sequence
from typing import Any, overload

import pyarrow as pa

from quiver.retry import CallPolicy, Retry
from quiver.types import as_data_type

SCALAR_ARROW = "scalar_arrow"
SCALAR_PANDAS = "scalar_pandas"
SCALAR_ARROW_ITER = "scalar_arrow_iter"
SCALAR_ROW = "scalar_row"
EVAL_TYPES = (SCALAR_ARROW, SCALAR_PANDAS, SCALAR_ARROW_ITER, SCALAR_ROW)

_FORMS = (
    "quiver infers how to call a UDF from its parameter type hints; use one of:\n"
    "  def f(x: pa.Array, ...) -> pa.Array                      (scalar_arrow)\n"
    "  def f(x: pd.Series, ...) -> pd.Series                    (scalar_pandas)\n"
    "  def f(batches: Iterator[tuple[pa.Array, ...]]) -> Iterator[pa.Array]"
    "  (scalar_arrow_iter)\n"
    "  async def f(x, ...) -> value (no Array/Series hints: one call per row, scalar_row)\n"
    "or pass eval_type= to @quiver.udf explicitly (eval_type='scalar_row' for a plain def "
    "called once per row)"
)


class UserDefinedFunction:
    """A Python function with the return type and eval type quiver needs to run it.

    Calling the object calls the function, so UDFs can be tested in process.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        returns: pa.DataType,
        eval_type: str,
        decode: bool = True,
        requirements: tuple[str, ...] = (),
        init_kwargs: dict[str, Any] | None = None,
        policy: CallPolicy | None = None,
        sandbox: tuple[str, ...] | None = None,
    ) -> None:
        """Wrap ``func``; ``returns`` and ``eval_type`` must already be validated.

        ``func`` may be a class (a class UDF, see docs/class-udfs.md): workers build one
        instance per process with ``init_kwargs`` and call it per batch.
        """
        self.func = func
        self.returns = returns
        self.eval_type = eval_type
        self.decode = decode
        self.requirements = requirements
        self.init_kwargs = dict(init_kwargs or {})
        # Concurrency, retries, per-call timeout and the failing-row policy (quiver/retry.py).
        self.policy = policy or CallPolicy()
        # None: runs where the run's workers run; a tuple: always in a sandboxed worker that
        # may also read these absolute paths (quiver/sandbox.py, docs/security.md).
        self.sandbox = sandbox
        # A class's __dict__ (its methods) must not land on the wrapper; a function's may.
        functools.update_wrapper(self, func, updated=() if inspect.isclass(func) else ("__dict__",))

    @property
    def is_class(self) -> bool:
        """Tell whether this UDF is a class whose instances are called per batch."""
        return inspect.isclass(self.func)

    def bind(self, **init_kwargs: Any) -> UserDefinedFunction:
        """Return this class UDF with keyword arguments for its constructor.

        >>> quiver.call(Model.bind(threshold=0.5), "x")               # doctest: +SKIP
        """
        if not self.is_class:
            raise TypeError(f"{self!r} is a function; only class UDFs take constructor arguments")
        merged = {**self.init_kwargs, **init_kwargs}
        return UserDefinedFunction(
            self.func,
            self.returns,
            self.eval_type,
            self.decode,
            self.requirements,
            merged,
            self.policy,
            self.sandbox,
        )

    def with_policy(self, **changes: Any) -> UserDefinedFunction:
        """Return this UDF with some of ``max_concurrency``, ``retries``, ``on_error``, ``timeout``
        changed (checked as ``@quiver.udf`` checks them).
        """
        policy = self.policy.replace(**changes)
        check_policy_fits(self.func, self.eval_type, policy)
        return UserDefinedFunction(
            self.func,
            self.returns,
            self.eval_type,
            self.decode,
            self.requirements,
            self.init_kwargs,
            policy,
            self.sandbox,
        )

    @property
    def is_async(self) -> bool:
        """Tell whether calling the function (a class: its ``__call__``) returns a coroutine."""
        return is_async_callable(self.func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the wrapped function."""
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        """Show the function, its return type and its eval type."""
        name = getattr(self.func, "__qualname__", repr(self.func))
        decode = "" if self.decode else " decode=False"
        kind = " class" if self.is_class else ""
        reqs = f" requirements={list(self.requirements)}" if self.requirements else ""
        policy = "" if self.policy.is_default else f" {self.policy}"
        kind = " async" + kind if self.is_async else kind
        sandbox = "" if self.sandbox is None else f" sandbox={list(self.sandbox) or True}"
        return (
            f"<quiver.udf{kind} {name} returns={self.returns} eval_type={self.eval_type}"
            f"{decode}{reqs}{policy}{sandbox}>"
        )


@overload
def udf(
    func: Callable[..., Any],
    *,
    returns: pa.DataType | str,
    eval_type: str | None = None,
    decode: bool = True,
    requirements: Sequence[str] = (),
    max_concurrency: int | None = None,
    retries: Retry | None = None,
    on_error: str = "raise",
    timeout: float | None = None,
    sandbox: bool | Sequence[str] = False,
) -> UserDefinedFunction: ...


@overload
def udf(
    func: None = None,
    *,
    returns: pa.DataType | str,
    eval_type: str | None = None,
    decode: bool = True,
    requirements: Sequence[str] = (),
    max_concurrency: int | None = None,
    retries: Retry | None = None,
    on_error: str = "raise",
    timeout: float | None = None,
    sandbox: bool | Sequence[str] = False,
) -> Callable[[Callable[..., Any]], UserDefinedFunction]: ...


def udf(
    func: Callable[..., Any] | None = None,
    *,
    returns: pa.DataType | str,
    eval_type: str | None = None,
    decode: bool = True,
    requirements: Sequence[str] = (),
    max_concurrency: int | None = None,
    retries: Retry | None = None,
    on_error: str = "raise",
    timeout: float | None = None,
    sandbox: bool | Sequence[str] = False,
) -> UserDefinedFunction | Callable[[Callable[..., Any]], UserDefinedFunction]:
    """Declare a UDF: ``@quiver.udf(returns="int64")`` above a function.

    ``returns`` is a pyarrow DataType or a type string (see :func:`quiver.parse_type`).
    ``eval_type`` ("scalar_arrow", "scalar_pandas" or "scalar_arrow_iter") overrides the
    inference from the function's parameter type hints.
    ``decode`` (default True) hands arguments over in their plain layout: dictionary-encoded,
    run-end encoded and view columns arrive decoded (``pa.DictionaryArray`` becomes its value
    type, ``string_view`` becomes ``string``); ``decode=False`` passes them as they are (see
    docs/types.md).

    On a class, ``@quiver.udf`` declares a class UDF: each worker builds one instance (its
    ``__init__`` runs once, e.g. to load a model), calls it per batch through ``__call__`` (the
    hints of ``__call__`` pick the eval type) and calls its ``close()``, if any, when the worker
    stops (docs/class-udfs.md).

    ``requirements`` (pip requirement strings, e.g. ``["numpy<2"]``) runs the UDF's workers
    in a virtual environment with them installed, built once and cached
    (docs/environments.md).

    ``max_concurrency``, ``retries``, ``on_error`` and ``timeout`` are for UDFs that wait (on a
    service, a database): on an ``async def``, a worker runs up to ``max_concurrency`` calls at
    once; ``retries=quiver.Retry(...)`` tries a failing call again with back-off (honouring a
    :class:`quiver.RetryAfter` the UDF raises); ``on_error="null"`` makes a row that still fails
    null and keeps its error in a ``NAME__error`` column; ``timeout`` (seconds, async UDFs) bounds
    each call (docs/async-udfs.md).

    ``sandbox=True`` runs the UDF in a sandboxed worker (Linux Landlock + seccomp: no network,
    reads only the system, the Python import path and the UDF's own folder, writes only in a
    private ``$TMPDIR``) even when the run or session is not sandboxed; other UDFs of the same
    map keep their ordinary workers. ``sandbox=["data/", "/models/m.bin"]`` lets it read those
    paths too (relative ones from the UDF's file). quiver reads ``sandbox=`` from the source
    before any worker starts, so it must be a literal there; a machine that cannot sandbox
    refuses the run, never runs the UDF unsandboxed (docs/security.md).
    """
    return_type = as_data_type(returns)
    if eval_type is not None and eval_type not in EVAL_TYPES:
        raise ValueError(f"eval_type must be one of {', '.join(EVAL_TYPES)}, not {eval_type!r}")
    if not isinstance(decode, bool):
        raise TypeError(f"decode= must be True or False, not {decode!r}")

    reqs = _requirement_list(requirements)
    policy = CallPolicy(max_concurrency, retries, on_error, timeout)
    _check_sandbox(sandbox)

    def decorate(function: Callable[..., Any]) -> UserDefinedFunction:
        if not callable(function):
            raise TypeError(
                f"@quiver.udf decorates functions and classes, not {type(function).__name__}"
            )
        if inspect.isclass(function) and not any("__call__" in vars(k) for k in function.__mro__):
            raise TypeError(f"class UDF {function.__qualname__} has no __call__ method")
        _reject_async_generator(function)
        chosen = eval_type if eval_type is not None else infer_eval_type(function)
        check_policy_fits(function, chosen, policy)
        paths = sandbox_paths(sandbox, _defining_folder(function))
        return UserDefinedFunction(function, return_type, chosen, decode, reqs, None, policy, paths)

    return decorate if func is None else decorate(func)


def _requirement_list(requirements: Sequence[str]) -> tuple[str, ...]:
    """Check ``requirements=`` (a list of pip requirement strings) and return it as a tuple."""
    if isinstance(requirements, str) or not all(isinstance(r, str) for r in requirements):
        raise TypeError(
            f"requirements= takes a list of requirement strings such as ['numpy<2'], "
            f"not {requirements!r}"
        )
    return tuple(r.strip() for r in requirements if r.strip())


def _check_sandbox(sandbox: object) -> None:
    """Check ``sandbox=``: True, False or a list of paths."""
    if isinstance(sandbox, bool):
        return
    if isinstance(sandbox, (str, bytes)) or not isinstance(sandbox, Sequence):
        raise TypeError(
            f"sandbox= takes True, False or a list of paths the UDF may read such as "
            f"['data/'], not {sandbox!r}"
        )
    for path in sandbox:
        if not isinstance(path, str) or not path or any(c in path for c in ":\t\n"):
            raise TypeError(
                f"sandbox= paths are non-empty strings without ':', tabs or newlines, not {path!r}"
            )


def sandbox_paths(sandbox: bool | Sequence[str], folder: str | None) -> tuple[str, ...] | None:
    """The absolute paths a ``sandbox=`` declaration grants (None: not sandboxed); relative
    ones are taken from ``folder`` (the UDF's file's), else from the working directory."""
    if sandbox is False:
        return None
    if sandbox is True:
        return ()
    base = folder or os.getcwd()
    return tuple(os.path.normpath(os.path.join(base, os.fspath(p))) for p in sandbox)


def _defining_folder(function: Callable[..., Any]) -> str | None:
    """The folder of the file that defines ``function``, if it has one."""
    try:
        source = inspect.getsourcefile(function)
    except TypeError:
        return None
    return os.path.dirname(os.path.abspath(source)) if source else None


def is_async_callable(func: Callable[..., Any]) -> bool:
    """Tell whether ``func`` (a class: its ``__call__``) is an ``async def``."""
    return inspect.iscoroutinefunction(_called(func))


def _called(func: Callable[..., Any]) -> Any:
    """Return what a call runs: a class UDF's ``__call__``, else the function itself."""
    return func.__call__ if inspect.isclass(func) else func  # type: ignore[operator]


def _reject_async_generator(func: Callable[..., Any]) -> None:
    """Refuse an ``async def`` that yields: a UDF returns one value per row or batch."""
    if inspect.isasyncgenfunction(_called(func)):
        name = getattr(func, "__qualname__", repr(func))
        raise TypeError(
            f"UDF {name} is an async generator (async def with yield); quiver calls an async "
            "UDF once per row (or batch) and awaits one value: return it instead of yielding it"
        )


def check_policy_fits(func: Callable[..., Any], eval_type: str, policy: CallPolicy) -> None:
    """Refuse options the UDF's form cannot honour (TypeError), naming what would."""
    name = getattr(func, "__qualname__", repr(func))
    if is_async_callable(func):
        if eval_type == SCALAR_ARROW_ITER:
            raise TypeError(
                f"UDF {name}: an async def cannot be a scalar_arrow_iter UDF; take a batch "
                "(pa.Array or pd.Series hints) or one row's values"
            )
        return
    if policy.max_concurrency is not None:
        raise TypeError(
            f"UDF {name}: max_concurrency= runs several calls at once on an event loop, so the "
            "UDF must be an async def"
        )
    if policy.timeout is not None:
        raise TypeError(
            f"UDF {name}: timeout= cancels a call that takes too long, which only an async def "
            "UDF can be; make it async (a blocking call can go in asyncio.to_thread)"
        )
    if eval_type == SCALAR_ARROW_ITER and not policy.is_default:
        raise TypeError(
            f"UDF {name}: retries= and on_error= apply to one call per row or batch; a "
            "scalar_arrow_iter UDF is one call for all batches"
        )


def infer_eval_type(func: Callable[..., Any]) -> str:
    """Return the eval type that ``func``'s parameter type hints call for.

    For a class, the hints of its ``__call__`` (after ``self``) count. An ``async def`` whose
    parameters have no pa.Array or pd.Series hints is called once per row (scalar_row).
    Raises TypeError when the hints are missing, mixed or of an unknown kind.
    """
    name = getattr(func, "__qualname__", repr(func))
    is_async = is_async_callable(func)
    if inspect.isclass(func):
        func = func.__call__  # type: ignore[operator]
        name = f"{name}.__call__"
    params, hints = _parameters_and_hints(func, name)
    kinds = {pname: _hint_kind(hints[pname]) for pname in params if pname in hints}
    if is_async and not {"arrow", "pandas", "iter"} & set(kinds.values()):
        return SCALAR_ROW
    if not kinds:
        raise TypeError(f"UDF {name} has no parameter type hints. {_FORMS}")
    unknown = [f"{p}: {_hint_text(hints[p])}" for p, kind in kinds.items() if kind is None]
    if unknown:
        raise TypeError(
            f"UDF {name} has parameter hints quiver cannot use ({', '.join(unknown)}). {_FORMS}"
        )
    found = set(kinds.values())
    if "iter" in found:
        if len(params) != 1:
            raise TypeError(
                f"UDF {name}: an Iterator-hinted UDF takes exactly one parameter (an iterator "
                f"of argument tuples), but it has {len(params)}. {_FORMS}"
            )
        return SCALAR_ARROW_ITER
    if len(found) > 1:
        raise TypeError(f"UDF {name} mixes pa.Array and pd.Series parameter hints. {_FORMS}")
    return SCALAR_ARROW if found == {"arrow"} else SCALAR_PANDAS


def _parameters_and_hints(func: Callable[..., Any], name: str) -> tuple[list[str], dict[str, Any]]:
    """Return the names of ``func``'s positional parameters and its resolved type hints."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"cannot inspect the signature of UDF {name}: {exc}. {_FORMS}") from None
    positional = (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    )
    params = [p.name for p in signature.parameters.values() if p.kind in positional]
    if name.endswith(".__call__") and params:
        params = params[1:]  # a class UDF's self
    try:
        hints = typing.get_type_hints(func)
    except Exception as exc:  # noqa: BLE001 - any failure to resolve hints means the same
        raise TypeError(
            f"cannot resolve the type hints of UDF {name} ({type(exc).__name__}: {exc}); "
            "import the hinted types in the UDF's module or pass eval_type= explicitly"
        ) from None
    return params, hints


def _hint_kind(hint: Any) -> str | None:
    """Classify one parameter hint as "arrow", "pandas", "iter", or None when unknown."""
    origin = typing.get_origin(hint) or hint
    if origin in (collections.abc.Iterator, collections.abc.Iterable):
        return "iter"
    if isinstance(hint, type) and issubclass(hint, (pa.Array, pa.ChunkedArray)):
        return "arrow"
    # pandas is imported lazily by quiver (it is slow to import); a module that hints pd.Series
    # has imported it already, so looking it up in sys.modules is enough.
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(hint, type) and issubclass(hint, pandas.Series):
        return "pandas"
    return None


def _hint_text(hint: Any) -> str:
    """Render a type hint the way a user wrote it."""
    return getattr(hint, "__qualname__", None) or repr(hint)
