"""UDFs that write to every place a worker's output can come from, for --log-dir."""

import logging
import os
import sys

import pyarrow as pa
import pyarrow.compute as pc

import quiver

log = logging.getLogger("loggy")


@quiver.udf(returns="int64")
def loggy(x: pa.Array) -> pa.Array:
    first = x[0].as_py()
    print(f"print stdout first={first}")
    print(f"print stderr first={first}", file=sys.stderr)
    log.debug(f"debug first={first}")  # below INFO: not kept
    log.info(f"info first={first}")
    log.warning(f"warning first={first}")
    log.error(f"error first={first}")
    os.write(1, f"raw fd1 first={first}\n".encode())
    os.write(2, f"raw fd2 first={first}\n".encode())
    return pc.multiply(x, 2)


@quiver.udf(returns="int64")
def print_then_die(x: pa.Array) -> pa.Array:
    print(f"last words before row {x[0].as_py()}", flush=True)
    os._exit(3)


@quiver.udf(returns="int64")
def log_exception(x: pa.Array) -> pa.Array:
    try:
        int("not a number")
    except ValueError:
        log.exception("caught while computing")
    return x
