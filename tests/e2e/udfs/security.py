"""UDFs that report, from inside a worker started by `quiver run`, what it can see of the
engine's security arrangements (docs/security.md)."""

import json
import os
import sys

import pyarrow as pa

import quiver


def _connection() -> str:
    return sys.argv[sys.argv.index("--connection") + 1]


def _listening_addresses() -> list[str]:
    """Return the local addresses ("HEXIP:HEXPORT") of this process's listening TCP sockets."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                    found.append(fields[1])
    return found


@quiver.udf(returns="string")
def what_the_worker_sees(x: pa.Array) -> pa.Array:
    connection = _connection()
    report = {"connection": connection, "listening": _listening_addresses()}
    if connection.startswith(("unix:", "grpc+unix:")):
        directory = os.path.dirname(connection.split(":", 1)[1])
        report["directory_mode"] = oct(os.stat(directory).st_mode & 0o777)
    with open("/proc/self/cmdline", "rb") as cmdline:
        report["cmdline"] = cmdline.read().replace(b"\0", b" ").decode()
    with open("/proc/self/environ", "rb") as environ:
        report["environ"] = environ.read().replace(b"\0", b"\n").decode(errors="replace")
    return pa.array([json.dumps(report)] * len(x), pa.string())
