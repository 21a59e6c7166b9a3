"""What a ``quiver.spark.map`` job runs, made on the driver and shipped to every task.

A :class:`Plan` is plain data (pickled with the task): the UDF calls grouped by runtime, the
kept columns, the session options and the Arrow schema Spark expects back.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa

from quiver.errors import InvalidInput
from quiver.udf_call import UdfCall

# The runtime of UDFs given as quiver.call(...): the Python worker of the executor's own Python.
PYTHON = "py"

# What a plan runs: scalar UDFs (Session.map), a grouped map (Session.apply) or a table
# function (Session.flat_map).
MAP, APPLY, FLAT_MAP = "map", "apply", "flat_map"


@dataclass(frozen=True)
class Runtime:
    """A declared runtime: the worker command, and whether its program is shipped to the
    executors with ``SparkContext.addFile`` (then each executor runs its own copy)."""

    name: str
    command: tuple[str, ...]
    shipped: bool

    @property
    def program(self) -> str:
        return self.command[0]


@dataclass(frozen=True)
class SessionOptions:
    """The options of the warm sessions (one per runtime) of an executor process."""

    workers: int
    transport: str
    batch_timeout: float
    max_in_flight: int


@dataclass(frozen=True)
class Plan:
    """Everything a task needs to map its partition."""

    # (runtime name, calls) in the order their runtimes first appear in udfs=[...].
    groups: tuple[tuple[str, tuple[UdfCall, ...]], ...]
    select: tuple[str, ...]
    runtimes: tuple[Runtime, ...]
    options: SessionOptions
    batch_rows: int
    output_schema: pa.Schema
    kind: str = MAP
    # The grouping columns of a grouped map.
    group_by: tuple[str, ...] = ()

    @property
    def udf_names(self) -> list[str]:
        return [c.name for _, calls in self.groups for c in calls]

    def runtime(self, name: str) -> Runtime | None:
        return next((r for r in self.runtimes if r.name == name), None)


def declared_runtimes(runtimes: dict[str, str | Sequence[str]] | None, ship: bool) -> list[Runtime]:
    """Check ``runtimes={"name": command}``: identifier names, a command string (split like
    a shell does) or list. A program that is a file here is shipped when ``ship`` is true."""
    declared = []
    for name, command in (runtimes or {}).items():
        if not isinstance(name, str) or not name.isidentifier() or name == PYTHON:
            raise InvalidInput(
                f"runtime name {name!r} must be an identifier other than {PYTHON!r} "
                "(it names the runtime in quiver.spark.runtime_call)"
            )
        argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        if not argv:
            raise InvalidInput(f"runtime {name!r} has an empty command")
        program = argv[0]
        shipped = ship and os.path.isfile(program)
        if shipped:
            argv[0] = os.path.abspath(program)
        elif os.sep in program and not os.path.isfile(program):
            raise InvalidInput(
                f"runtime {name!r}: its program {program} does not exist on the driver; "
                "build it, or give a path that exists"
            )
        declared.append(Runtime(name, tuple(argv), shipped))
    return declared
