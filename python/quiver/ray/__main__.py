"""``python -m quiver.ray run``: the driver of ``quiver run ... --ray ADDRESS``.

The ``quiver`` command parses and checks its options (the same --udf grammar and errors as a
local run), then replaces itself with this driver, passing the parsed UDF calls as JSON in
``--calls``: a list of ``{"name", "payload_format", "payload", "arguments"}``, each argument
an Arrow compute expression serialized by ``arrow::compute::Serialize``, base64-encoded. What a
UDF's decorator declares (``requirements=``, ``sandbox=``) is read here from its source, as a
local ``quiver run`` reads it. ``--sandbox`` (with ``--sandbox-read PATH``, absolute) sandboxes
every worker, ``quiver.Session(sandbox=...)`` on every actor.

Exit status as ``quiver run``: 0 success, 1 failure, 2 bad command line, 130 interrupted.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from typing import Any

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
PY_REF = "python/ref"


def parse_calls(text: str) -> list[Any]:
    """The UDF calls of ``--calls`` as :class:`quiver.UdfCall` objects."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from quiver.envs import declared_requirements, declared_sandbox, normalise
    from quiver.session import UdfCall

    calls = []
    for entry in json.loads(text):
        is_ref = entry["payload_format"] == PY_REF
        calls.append(
            UdfCall(
                entry["name"],
                entry["payload_format"],
                entry["payload"].encode(),
                tuple(
                    pc.Expression._deserialize(pa.py_buffer(base64.b64decode(a)))
                    for a in entry["arguments"]
                ),
                requirements=normalise(declared_requirements(entry["payload"])) if is_ref else (),
                sandbox=declared_sandbox(entry["payload"]) if is_ref else None,
            )
        )
    return calls


def sandbox_option(options: argparse.Namespace, calls: list[Any]) -> bool | list[str]:
    """``Session(sandbox=...)`` of the actors: False, or the paths the workers may read (the
    ``--sandbox-read`` paths and the folders of the UDF files, as a local run grants)."""
    if not options.sandbox:
        return False
    import os

    targets = [c.payload.decode().rpartition(":")[0] for c in calls if c.payload_format == PY_REF]
    folders = [os.path.dirname(t) for t in targets if t.endswith(".py")]
    return [*options.sandbox_read, *folders]


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m quiver.ray",
        description="Run quiver UDFs over files on a Ray cluster (quiver run ... --ray).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="one output file per input file")
    run.add_argument("inputs", nargs="+", help="input files, directories or globs")
    run.add_argument("-o", "--output", required=True, help="output directory")
    run.add_argument("--calls", required=True, help="the parsed UDF calls, JSON")
    run.add_argument("--ray", default="auto", help="cluster address, 'auto' or 'local'")
    run.add_argument("--select", default=None, help="JSON list of columns to keep")
    run.add_argument("--input-format")
    run.add_argument("--output-format")
    run.add_argument("--batch-rows", type=int, default=65536)
    run.add_argument("--workers", type=int, default=1)
    run.add_argument("--actors", type=int, default=None)
    run.add_argument("--batch-timeout", type=float, default=60)
    run.add_argument("--max-in-flight", type=int, default=4)
    run.add_argument("--transport", default="uds")
    run.add_argument("--python", default=None)
    run.add_argument("--retries", type=int, default=2)
    run.add_argument("--force", action="store_true")
    run.add_argument("--sandbox", action="store_true", help="sandbox every worker")
    run.add_argument("--sandbox-read", action="append", default=[], help="with --sandbox")
    run.add_argument("-q", "--quiet", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    options = arguments(sys.argv[1:] if argv is None else argv)
    try:
        import ray  # noqa: F401
    except ImportError:
        print(
            "quiver: error: --ray needs Ray in the Python that runs quiver "
            f"({sys.executable}): pip install 'quiver[ray]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from quiver.errors import InvalidInput, QuiverError
    from quiver.ray.job import run_files

    def progress(done: int, total: int, result: Any) -> None:
        if not options.quiet:
            print(
                f"quiver: [{done}/{total}] {result.source}: {result.rows:,} rows in "
                f"{result.seconds:.2f} s on node {result.node}",
                file=sys.stderr,
                flush=True,
            )
            for attempt, reason in enumerate(result.retried_after, 1):
                print(f"  run again after attempt {attempt}: {reason}", file=sys.stderr)

    try:
        calls = parse_calls(options.calls)
        sandbox = sandbox_option(options, calls)
        if sandbox is not False:  # refused here, on the driver's node, before Ray starts
            from quiver.sandbox import check_sandbox_supported

            check_sandbox_supported()
        summary = run_files(
            options.inputs,
            options.output,
            calls,
            address=options.ray,
            workers=options.workers,
            actors=options.actors,
            batch_rows=options.batch_rows,
            select=None if options.select is None else json.loads(options.select),
            input_format=options.input_format,
            output_format=options.output_format,
            batch_timeout=options.batch_timeout,
            max_in_flight=options.max_in_flight,
            transport=options.transport,
            python=options.python,
            retries=options.retries,
            force=options.force,
            progress=progress,
            sandbox=sandbox,
        )
    except KeyboardInterrupt:
        print("quiver: interrupted; no output was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except InvalidInput as error:
        print(f"quiver: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except QuiverError as error:
        print(f"quiver: error: {error}", file=sys.stderr)
        if getattr(error, "traceback", ""):
            print(error.traceback.rstrip(), file=sys.stderr)
        for note in getattr(error, "__notes__", []):
            print(note, file=sys.stderr)
        return EXIT_FAILURE
    except Exception as error:  # Ray's own failures: a lost node, an unreachable cluster
        print(
            f"quiver: error: the Ray job failed: {type(error).__name__}: {error}", file=sys.stderr
        )
        return EXIT_FAILURE
    if not options.quiet:
        sys.stderr.write(summary.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
