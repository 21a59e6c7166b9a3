"""UDFs that look at the worker process they run in (its descriptors, environment, parent)."""

import os

import pyarrow as pa

import quiver


@quiver.udf(returns="string")
def open_fds(x: pa.Array) -> pa.Array:
    """Describe each descriptor the worker has open, as 'FD -> TARGET' joined by '; '."""
    entries = []
    for name in sorted(os.listdir("/proc/self/fd"), key=int):
        try:
            entries.append(f"{name} -> {os.readlink(f'/proc/self/fd/{name}')}")
        except OSError:  # the descriptor listdir itself used, closed by now
            pass
    return pa.array(["; ".join(entries)] * len(x))


@quiver.udf(returns="string")
def visible_secrets(x: pa.Array) -> pa.Array:
    """Return what of the worker's secret UDF code can read: its environment block, its
    environment variables and its parent's command line, all joined."""
    with open("/proc/self/environ", "rb") as environ:
        block = environ.read().decode(errors="replace")
    with open(f"/proc/{os.getppid()}/cmdline", "rb") as cmdline:
        parent = cmdline.read().decode(errors="replace")
    variables = " ".join(f"{key}={value}" for key, value in os.environ.items())
    return pa.array([f"{block}\n{variables}\n{parent}"] * len(x))


@quiver.udf(returns="int64")
def slow(x: pa.Array) -> pa.Array:
    import time

    time.sleep(0.2)
    return x
