"""The benchmark's memory sampler (bench/quiver_bench/rss.py) on real process trees.

A fake engine (a Python program run under the name `quiver`) starts a detached "fork server"
(a process whose command line names quiver.forkserver) the way quiver does: a double fork, and
the exec only a while after the fork. The server forks two workers: one writes to a pipe the
engine holds (the engine's worker) and one to a pipe it does not (another run's).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _load_sampler():
    """Load bench/quiver_bench/rss.py by its path: putting bench/ on sys.path would shadow the
    Python suites' `udfs` package with bench/udfs.py in this pytest process, and quiver.Session
    hands sys.path to its workers."""
    spec = importlib.util.spec_from_file_location(
        "quiver_bench_rss", ROOT / "bench" / "quiver_bench" / "rss.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module.ProcessTreeSampler


ProcessTreeSampler = _load_sampler()

WORKER_MIB = 64

# argv: quiver.forkserver MINE_FD. Forks the engine's worker on MINE_FD and another run's worker
# on a pipe of its own; each holds WORKER_MIB MiB for a while, then everything exits.
SERVER = textwrap.dedent(
    f"""
    import os, sys, time
    mine = int(sys.argv[2])
    other_read, other = os.pipe()
    for output in (mine, other):
        if os.fork() == 0:
            os.dup2(output, 1)
            held = b"x" * ({WORKER_MIB} << 20)
            time.sleep(1.5)
            os._exit(0)
    os.close(mine)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            break
    """
)

# The engine: holds the read end of its worker's pipe; its server child execs only after 1 s,
# so the sampler first sees it as a copy of the engine (whose command line must not name the
# server's module: hence the split string).
ENGINE = textwrap.dedent(
    """
    import os, sys, time
    log_read, log_write = os.pipe()
    os.set_inheritable(log_write, True)
    time.sleep(1.0)  # the sampler has read /proc once by then
    if os.fork() == 0:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        time.sleep(1.0)
        os.execv(sys.executable, [sys.executable, "-c", sys.argv[1], "quiver." + "forkserver",
                                  str(log_write)])
    os.wait()
    os.close(log_write)
    os.read(log_read, 1)  # the worker's exit closes the pipe
    """
)


def test_the_fork_servers_children_count_only_for_the_engine_whose_pipe_they_write(
    tmp_path: Path,
) -> None:
    quiver = tmp_path / "quiver"
    quiver.symlink_to(sys.executable)  # the process's name is then `quiver`, as an engine's
    engine = [str(quiver), "-c", ENGINE, SERVER]
    launcher = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess; subprocess.run({engine!r})"]
    )
    sampler = ProcessTreeSampler(launcher.pid, "launcher", interval=0.02).start()
    assert launcher.wait(timeout=30) == 0
    workers = sampler.stop().megabytes()["workers"]
    # One worker: its MiB and an interpreter's; not 0 (the server missed), not two workers.
    assert WORKER_MIB < workers < 2 * WORKER_MIB, workers
