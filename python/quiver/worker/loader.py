"""Load UDF objects from the payloads of an ``Init`` (``python/ref``, ``python/cloudpickle``)."""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import sys
import threading
from types import CodeType, ModuleType
from typing import Any

from quiver.worker.errors import WorkerFailure, user_traceback

PYTHON_REF = "python/ref"
PYTHON_CLOUDPICKLE = "python/cloudpickle"
PAYLOAD_FORMATS = (PYTHON_REF, PYTHON_CLOUDPICKLE)

# Files loaded by path, keyed by (path, hash of the source): a pooled worker serves many executions
# and should not re-run a UDF file's top-level code (often expensive setup) for each of them. The
# hash, not (mtime, size): a file edited twice within a timestamp's resolution at the same size
# must still run its new code.
_file_modules: dict[tuple[str, str], ModuleType] = {}
# Executions on different grpc calls load UDFs at the same time; without the lock two of them
# could both miss the cache and run a file's top-level code twice.
_file_modules_lock = threading.RLock()


def load_udf_object(udf_name: str, payload_format: str, payload: bytes) -> Any:
    """Return the object a payload names; raise WorkerError when it cannot be loaded."""
    if payload_format == PYTHON_REF:
        return _load_ref(udf_name, payload)
    if payload_format == PYTHON_CLOUDPICKLE:
        return _load_cloudpickle(udf_name, payload)
    raise WorkerFailure(
        f"UDF {udf_name!r} has payload_format {payload_format!r}, which this worker does not "
        f"know; it loads {', '.join(PAYLOAD_FORMATS)}",
        udf_name,
    )


def _load_ref(udf_name: str, payload: bytes) -> Any:
    """Load ``PATH.py:NAME`` or ``module.sub:NAME``."""
    try:
        ref = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WorkerFailure(
            f"UDF {udf_name!r}: python/ref payload is not UTF-8 ({exc})", udf_name
        ) from None
    target, sep, qualname = ref.rpartition(":")
    if not sep or not target or not qualname:
        raise WorkerFailure(
            f"UDF {udf_name!r}: python/ref payload {ref!r} is not of the form PATH.py:FUNCTION "
            "or module.sub:FUNCTION",
            udf_name,
        )
    try:
        module = _import_target(target)
    except WorkerFailure:
        raise
    except (Exception, SystemExit) as exc:  # the UDF module's top-level code may raise anything
        raise WorkerFailure(
            f"cannot load UDF {udf_name!r} from {ref!r}: {type(exc).__name__}: {exc}\n"
            f"{user_traceback(exc)}",
            udf_name,
        ) from exc
    return _resolve_qualname(udf_name, ref, module, qualname)


def _import_target(target: str) -> ModuleType:
    """Import a module given as a file path (ends in .py or holds a slash) or a dotted name."""
    if target.endswith(".py") or "/" in target or os.sep in target:
        return _import_file(target)
    return importlib.import_module(target)


def _import_file(path: str) -> ModuleType:
    """Execute a UDF file as a module (cached while the file does not change)."""
    with _file_modules_lock:
        return _import_file_locked(path)


def _import_file_locked(path: str) -> ModuleType:
    """Execute a UDF file as a module, holding the cache's lock."""
    full = os.path.abspath(path)
    try:
        with open(full, "rb") as file:
            source = file.read()
    except OSError as exc:
        raise FileNotFoundError(f"UDF file {full} cannot be read: {exc.strerror}") from None
    key = (full, hashlib.sha256(source).hexdigest())
    if key in _file_modules:
        return _file_modules[key]
    # A unique, stable module name lets two files with the same base name coexist and lets
    # pickling and dataclasses find the module in sys.modules.
    digest = hashlib.sha1(full.encode()).hexdigest()[:10]
    stem = os.path.splitext(os.path.basename(full))[0]
    name = f"_quiver_udf_{stem}_{digest}"
    spec = importlib.util.spec_from_file_location(
        name, full, loader=_SourceOnlyLoader(name, full, source)
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {full} as a Python module")
    module = importlib.util.module_from_spec(spec)
    # The file's folder goes on sys.path so that it can import the modules next to it.
    folder = os.path.dirname(full)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    _file_modules[key] = module
    return module


class _SourceOnlyLoader(importlib.machinery.SourceFileLoader):
    """Compile a UDF file from its source every time, never through ``__pycache__``.

    Python's bytecode cache is checked by the source's mtime in whole seconds and its size: a
    UDF file edited twice within one second at the same size would run the code of the first
    edit. UDF files are small, so compiling them is cheap; nothing is written beside them either.
    The source is the one whose hash keys the cache, read once.
    """

    def __init__(self, fullname: str, path: str, source: bytes) -> None:
        """Load ``path`` as module ``fullname`` from ``source``, the bytes the cache key hashed."""
        super().__init__(fullname, path)
        self._source = source

    def get_code(self, fullname: str) -> CodeType:
        """Return the code of the source this loader was given."""
        return compile(self._source, self.path, "exec", dont_inherit=True)


def _resolve_qualname(udf_name: str, ref: str, module: ModuleType, qualname: str) -> Any:
    """Follow ``Outer.inner`` attribute lookups from ``module``."""
    obj: Any = module
    for part in qualname.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            # Name what the user wrote (the file, not the module name it is imported under).
            where = ref.rpartition(":")[0] if obj is module else getattr(obj, "__name__", obj)
            close = difflib.get_close_matches(part, [n for n in dir(obj) if not n.startswith("_")])
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise WorkerFailure(
                f"cannot load UDF {udf_name!r} from {ref!r}: {where!s} has no attribute "
                f"{part!r}{hint}",
                udf_name,
            ) from None
    return obj


def _load_cloudpickle(udf_name: str, payload: bytes) -> Any:
    """Unpickle a function pickled with cloudpickle."""
    try:
        import cloudpickle

        return cloudpickle.loads(payload)
    except (Exception, SystemExit) as exc:
        raise WorkerFailure(
            f"cannot unpickle UDF {udf_name!r} (python/cloudpickle, {len(payload)} bytes): "
            f"{type(exc).__name__}: {exc}",
            udf_name,
        ) from exc
