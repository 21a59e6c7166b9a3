"""The instances of class UDFs: built once per worker process, reused, closed when it stops.

A class UDF (``@quiver.udf`` on a class, docs/class-udfs.md) is set up by its ``__init__``
(loading a model, opening a connection) and called per batch through ``__call__``. The setup
is the expensive part, so an instance lives as long as the worker: every execution (partition)
that names the same class with the same constructor arguments reuses it. ``close()``, when the
class has one, runs when the worker stops (Shutdown, SIGTERM, the engine going away); what it
raises is reported in the worker's log, which the engine keeps.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from quiver.worker.errors import WorkerFailure, user_traceback
from quiver.worker.loader import PYTHON_REF


@dataclass
class _Entry:
    """One live instance and the class object it was built from."""

    cls: type
    instance: Any


# Keyed by (payload format, payload digest, constructor arguments). A python/ref class is
# looked up again each execution (its file may have changed, giving a new class object); a
# pickled class is a new object after every unpickling, so its payload is what identifies it.
_instances: dict[tuple[str, str, str], _Entry] = {}
_lock = threading.RLock()


def parse_constructor_args(udf_name: str, text: str) -> dict[str, Any]:
    """Return the keyword arguments in ``UdfDefinition.constructor_args`` (a JSON object)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise WorkerFailure(
            f"UDF {udf_name!r}: constructor_args is not valid JSON ({exc}): {text[:200]!r}",
            udf_name,
        ) from None
    if not isinstance(value, dict):
        raise WorkerFailure(
            f"UDF {udf_name!r}: constructor_args must be a JSON object of keyword arguments, "
            f"not {type(value).__name__}",
            udf_name,
        )
    return value


def instance_for(
    udf_name: str,
    cls: type,
    kwargs: dict[str, Any],
    payload_format: str,
    payload: bytes,
) -> Any:
    """Return this worker's instance of ``cls`` built with ``kwargs``, building it if needed.

    A failing ``__init__`` raises WorkerFailure naming the class (and is tried again by the next
    execution: nothing is cached for it).
    """
    try:
        args_key = json.dumps(kwargs, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        args_key = repr(sorted(kwargs.items()))
    key = (payload_format, hashlib.sha256(payload).hexdigest(), args_key)
    with _lock:
        entry = _instances.get(key)
        if entry is not None and (entry.cls is cls or payload_format != PYTHON_REF):
            return entry.instance
        if entry is not None:  # the file defining the class changed: retire the old instance
            _close_one(key, entry, logging.getLogger("quiver.worker"))
        instance = _construct(udf_name, cls, kwargs)
        _instances[key] = _Entry(cls, instance)
        return instance


def _construct(udf_name: str, cls: type, kwargs: dict[str, Any]) -> Any:
    """Run the class's setup; wrap what it raises as a WorkerError naming the class."""
    qualname = f"{cls.__module__}.{cls.__qualname__}"
    try:
        return cls(**kwargs)
    except (Exception, SystemExit) as exc:  # the user's setup code may raise anything
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise WorkerFailure(
            f"UDF {udf_name!r}: setting up class {cls.__qualname__} ({qualname}({given})) "
            f"failed: {type(exc).__name__}: {exc}\n{user_traceback(exc)}",
            udf_name,
        ) from exc


def close_all(log: logging.Logger) -> int:
    """Call ``close()`` on every instance (the worker is stopping); return how many failed."""
    with _lock:
        entries = list(_instances.items())
        _instances.clear()
    return sum(not _close_one(key, entry, log) for key, entry in entries)


def _close_one(key: tuple[str, str, str], entry: _Entry, log: logging.Logger) -> bool:
    """Close one instance; log (with the traceback) what its ``close()`` raises."""
    _instances.pop(key, None)
    close = getattr(entry.instance, "close", None)
    if not callable(close):
        return True
    try:
        close()
    except (Exception, SystemExit) as exc:
        log.error(
            "class UDF %s: close() raised %s: %s\n%s",
            entry.cls.__qualname__,
            type(exc).__name__,
            exc,
            user_traceback(exc),
        )
        return False
    return True
