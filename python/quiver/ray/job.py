"""``quiver.ray.run_files``: one output file per input file, computed across a Ray cluster.

The driver lists the inputs and starts actors (spread over the nodes), each holding one warm
:class:`quiver.Session`; every input file is one Ray task on one actor, which streams the
file through its session into ``NAME.part-PID`` and renames that to ``NAME`` when the file is
done. All files go to a temporary directory beside the output directory, renamed to it once
every file succeeded: a failed or interrupted job leaves no output at all.

Failures: a quiver worker that dies under a file (``retryable`` errors) makes the actor run
that file again from its start on a fresh worker; an actor that dies makes Ray restart it and
run its file again (``max_restarts``/``max_task_retries``). Either way the file's output is
written whole by one attempt, so no row is lost or doubled. A UDF that raises fails the job
with the same :class:`quiver.UdfError` the UDF raised, unwrapped from Ray's error.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from quiver.errors import InvalidInput, QuiverError
from quiver.ray import files
from quiver.session import UdfCall, call


@dataclass
class FileResult:
    """What one input file gave: its output rows and batches, where it ran, how long."""

    source: str
    output: str
    rows: int
    batches: int
    seconds: float
    node: str
    attempts: int
    # Why each earlier attempt was given up (the first line of its error), oldest first.
    retried_after: list[str] = field(default_factory=list)


@dataclass
class JobSummary:
    """The figures of a finished job."""

    output: str
    files: list[FileResult] = field(default_factory=list)
    elapsed: float = 0.0
    actors: int = 0
    workers_per_actor: int = 1

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def batches(self) -> int:
        return sum(f.batches for f in self.files)

    @property
    def nodes(self) -> list[str]:
        return sorted({f.node for f in self.files})

    def text(self) -> str:
        """The summary printed at the end of ``quiver run --ray``, like ``quiver run``'s."""
        rate = self.rows / self.elapsed if self.elapsed > 0 else 0.0
        again = sum(f.attempts - 1 for f in self.files)
        return (
            f"quiver: done in {self.elapsed:.2f} s on Ray\n"
            f"  rows     {self.rows:,} in {self.batches:,} batches ({rate:,.0f} rows/s)\n"
            f"  files    {len(self.files)} on {len(self.nodes)} "
            f"{'node' if len(self.nodes) == 1 else 'nodes'}, {self.actors} actors x "
            f"{self.workers_per_actor} workers"
            + (f", {again} run again after a worker died" if again else "")
            + f"\n  output   {self.output}\n"
        )


class FileMapper:
    """The actor of a job: one warm session, one input file per call."""

    def __init__(self, calls: list[UdfCall], options: dict[str, Any]) -> None:
        from quiver.session import Session

        self._calls = calls
        self._batch_rows = options["batch_rows"]
        self._select = options["select"]
        self._retries = options["retries"]
        self._session = Session(
            workers=options["workers"],
            transport=options["transport"],
            batch_timeout=options["batch_timeout"],
            python=options["python"],
            max_in_flight=options["max_in_flight"],
            sandbox=options.get("sandbox", False),
        )

    def run(self, source: str, in_format: str, target: str, out_format: str) -> FileResult:
        """Map ``source`` into ``target``, from its start again when a worker died under it."""
        start = time.monotonic()
        retried_after: list[str] = []
        while True:
            try:
                rows, batches = self._write(source, in_format, target, out_format)
                break
            except QuiverError as error:
                if not error.retryable or len(retried_after) >= self._retries:
                    if retried_after:  # what came before this failure, for whoever reads it
                        error.add_note(_earlier_attempts(source, retried_after))
                    raise
                retried_after.append(str(error).splitlines()[0])
        return FileResult(
            source,
            target,
            rows,
            batches,
            time.monotonic() - start,
            _node_name(),
            len(retried_after) + 1,
            retried_after,
        )

    def _write(self, source: str, in_format: str, target: str, out_format: str) -> tuple[int, int]:
        reader, _ = files.open_input(source, in_format, self._batch_rows)
        out = self._session.map(
            reader, udfs=self._calls, batch_rows=self._batch_rows, select=self._select
        )
        part = f"{target}.part-{os.getpid()}"
        rows = batches = 0
        writer = files.OutputWriter(part, out_format, out.schema)
        try:
            for batch in out:
                writer.write(batch)
                rows += batch.num_rows
                batches += 1
            writer.close()
            os.replace(part, target)
        finally:
            if os.path.exists(part):
                os.unlink(part)
        return rows, batches

    def close(self) -> None:
        self._session.close()


def _earlier_attempts(source: str, reasons: list[str]) -> str:
    """Say why ``source`` was run again before its last attempt."""
    lines = [f"{source} was run {len(reasons) + 1} times; the earlier attempts ended:"]
    lines += [f"  attempt {i}: {reason}" for i, reason in enumerate(reasons, 1)]
    return "\n".join(lines)


def _node_name() -> str:
    import ray

    try:
        return ray.get_runtime_context().get_node_id()[:8]
    except Exception:
        return os.uname().nodename


def run_files(
    inputs: str | Iterable[str],
    output: str,
    udfs: Sequence[UdfCall | Callable[..., Any] | str],
    *,
    address: str | None = "auto",
    workers: int = 1,
    actors: int | None = None,
    batch_rows: int = 65536,
    select: Sequence[str] | None = None,
    input_format: str | None = None,
    output_format: str | None = None,
    batch_timeout: float = 60,
    max_in_flight: int = 4,
    transport: str = "uds",
    python: str | None = None,
    retries: int = 2,
    force: bool = False,
    progress: Callable[[int, int, FileResult], None] | None = None,
    sandbox: bool | Sequence[str] = False,
) -> JobSummary:
    """Run ``udfs`` over every input file on a Ray cluster; write one output file per input.

    ``inputs`` is a file, a directory or a glob (or a list of them); ``output`` a directory
    that receives ``STEM.parquet`` (or ``output_format``'s extension) per input, all at
    once when every file succeeded. ``address`` is the cluster (``"auto"``: the one started
    on this machine with ``ray start``; ``"local"``: a new one-node Ray in this process;
    ``None``: Ray as already initialised). ``actors`` actors (default: the cluster's CPUs
    divided by ``workers``, at most one per file) each run ``workers`` quiver workers.
    ``progress(done, total, result)`` is called as each file finishes. ``sandbox`` is the
    sessions' (``quiver.Session(sandbox=...)``: every worker of every actor sandboxed, on
    each node or refused there); UDFs declared ``@quiver.udf(sandbox=...)`` are sandboxed
    either way.

    Raises the job's first failure: a :class:`quiver.QuiverError` (a UDF's
    :class:`quiver.UdfError` as the UDF raised it), or Ray's error when Ray itself failed.
    """
    import ray

    started = time.monotonic()
    calls = [u if isinstance(u, UdfCall) else call(u) for u in udfs]
    if not calls:
        raise InvalidInput("run_files needs at least one UDF in udfs=[...]")
    sources = files.list_inputs(inputs)
    in_formats = [files.input_format(s, input_format) for s in sources]
    out_format = files.output_format(output_format)
    names = files.output_names(sources, out_format)
    output = os.path.abspath(output)
    _check_output(output, sources, force)
    own_ray = not ray.is_initialized()
    if own_ray:
        _init_ray(address)
    temporary = os.path.join(
        os.path.dirname(output), f".{os.path.basename(output)}.quiver-tmp-{os.getpid()}"
    )
    os.mkdir(temporary)
    pool: list[Any] = []
    finished = False
    try:
        count, cpus = _actor_shape(len(sources), workers, actors)
        options = {
            "workers": workers,
            "transport": transport,
            "batch_timeout": batch_timeout,
            "python": python,
            "max_in_flight": max_in_flight,
            "batch_rows": batch_rows,
            "select": None if select is None else list(select),
            "retries": retries,
            "sandbox": sandbox if isinstance(sandbox, bool) else list(sandbox),
        }
        actor_class = ray.remote(FileMapper).options(
            num_cpus=cpus,
            max_restarts=retries,
            max_task_retries=retries,
            scheduling_strategy="SPREAD",
        )
        pool = [actor_class.remote(calls, options) for _ in range(count)]
        tasks = [
            (s, f, os.path.join(temporary, n), out_format)
            for s, f, n in zip(sources, in_formats, names, strict=True)
        ]
        results = _schedule(pool, tasks, progress)
        _commit(temporary, output)
        finished = True
    finally:
        _stop(pool, graceful=finished)
        shutil.rmtree(temporary, ignore_errors=True)
        if own_ray:
            ray.shutdown()
    for result in results:
        result.output = os.path.join(output, os.path.basename(result.output))
    return JobSummary(output, results, time.monotonic() - started, len(pool), workers)


def _init_ray(address: str | None) -> None:
    import logging

    import ray

    kwargs: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address == "local":
        ray.init(**kwargs)
    else:
        ray.init(address=address, **kwargs)


def _actor_shape(files_count: int, workers: int, actors: int | None) -> tuple[int, float]:
    """How many actors, and the CPUs each asks Ray for (its quiver workers' cores)."""
    import ray

    if workers < 1:
        raise InvalidInput(f"workers must be at least 1, not {workers}")
    node_cpus = [n["Resources"].get("CPU", 0) for n in ray.nodes() if n.get("Alive")]
    largest = max(node_cpus, default=1) or 1
    cpus = float(min(workers, largest))
    if actors is None:
        actors = max(1, int(sum(node_cpus) // cpus))
    if actors < 1:
        raise InvalidInput(f"actors must be at least 1, not {actors}")
    return min(actors, files_count), cpus


def _schedule(
    pool: list[Any],
    tasks: list[tuple[str, str, str, str]],
    progress: Callable[[int, int, FileResult], None] | None,
) -> list[FileResult]:
    """Run every task, one at a time per actor; stop at the first failure."""
    import ray

    pending = list(reversed(tasks))
    running: dict[Any, Any] = {}
    results: list[FileResult] = []
    for actor in pool:
        if pending:
            running[actor.run.remote(*pending.pop())] = actor
    while running:
        done, _ = ray.wait(list(running), num_returns=1)
        actor = running.pop(done[0])
        try:
            result = ray.get(done[0])
        except ray.exceptions.RayTaskError as error:
            cause = error.cause
            if isinstance(cause, QuiverError):
                raise cause from None
            raise
        results.append(result)
        if progress is not None:
            progress(len(results), len(tasks), result)
        if pending:
            running[actor.run.remote(*pending.pop())] = actor
    return sorted(results, key=lambda r: r.source)


def _check_output(output: str, sources: list[str], force: bool) -> None:
    parent = os.path.dirname(output)
    if not os.path.isdir(parent):
        raise InvalidInput(f"the directory of output {output} does not exist; create {parent}")
    if os.path.exists(output):
        if not os.path.isdir(output):
            raise InvalidInput(f"output {output} exists and is not a directory")
        if os.listdir(output) and not force:
            raise InvalidInput(
                f"output directory {output} is not empty; give another, or --force to replace it"
            )
    inside = [s for s in sources if os.path.commonpath([s, output]) == output]
    if inside:
        raise InvalidInput(f"input {inside[0]} is inside the output directory {output}")


def _commit(temporary: str, output: str) -> None:
    """Put the finished directory in place of ``output`` (renames on one file system)."""
    old = None
    if os.path.exists(output):
        old = f"{temporary}-old"
        os.rename(output, old)
    os.rename(temporary, output)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _stop(pool: list[Any], graceful: bool) -> None:
    """Stop the actors: idle ones close their sessions first; after a failure they are
    killed at once (their quiver workers die with them: PR_SET_PDEATHSIG)."""
    import ray

    if graceful and pool:
        closing = [actor.close.remote() for actor in pool]
        ray.wait(closing, num_returns=len(closing), timeout=10)
    for actor in pool:
        ray.kill(actor)
