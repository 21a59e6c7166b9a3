"""A Ray cluster of several nodes on this machine, for tests, benchmarks and trying things.

Each node is a ``ray start`` raylet bound to loopback (``--node-ip-address=127.0.0.1``), with
its own logical CPUs and a small object store, all under one private temporary directory with
a short path (Unix socket paths must stay under 107 bytes)::

    with LocalCluster(nodes=2, cpus_per_node=2) as cluster:
        ray.init(address=cluster.address)
        ...

Stopping kills exactly this cluster's processes, found by their command lines (which name the
private directory or the cluster's ports) and their descendants, by process id: never
``ray stop``, which would stop every Ray cluster of the user on the machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalCluster:
    """``nodes`` Ray nodes on this machine (a head and ``nodes - 1`` workers), loopback only.

    ``cpus_per_node`` logical CPUs each (advertise at least 2 on a small machine, or Ray
    Data's read tasks wait for the map actors' CPUs), ``object_store_bytes`` of object store
    each. Each ``ray start`` has ``start_timeout`` seconds.
    """

    def __init__(
        self,
        nodes: int = 2,
        cpus_per_node: int = 2,
        object_store_bytes: int = 100 * 1024 * 1024,
        start_timeout: float = 120,
        python: str | None = None,
    ) -> None:
        self.nodes = nodes
        self.cpus_per_node = cpus_per_node
        self.object_store_bytes = object_store_bytes
        self.start_timeout = start_timeout
        self.python = python or sys.executable
        self.directory = ""
        self.port = 0
        self.address = ""
        self._ports: list[int] = []

    def start(self, attempts: int = 2) -> LocalCluster:
        """Start the nodes; on a failure stop what started and try again (Ray gives a raylet
        a fixed 30 s to register, which a loaded machine can miss), then raise."""
        for attempt in range(attempts):
            try:
                return self._start()
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
        return self

    def _start(self) -> LocalCluster:
        self.directory = tempfile.mkdtemp(prefix="qr", dir="/tmp")
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._ports = [self.port]
        try:
            self._ray_start(
                "--head",
                f"--port={self.port}",
                f"--temp-dir={self.directory}",
                "--include-dashboard=false",
                f"--dashboard-port={self._port()}",
                f"--ray-client-server-port={self._port()}",
            )
            for _ in range(self.nodes - 1):
                self._ray_start(f"--address={self.address}")
            self._wait_for_nodes()
        except BaseException:
            self.stop()
            raise
        return self

    def _port(self) -> int:
        port = _free_port()
        self._ports.append(port)
        return port

    def _ray_start(self, *arguments: str) -> None:
        command = [
            self.python,
            "-m",
            "ray.scripts.scripts",
            "start",
            "--node-ip-address=127.0.0.1",
            f"--num-cpus={self.cpus_per_node}",
            f"--object-store-memory={self.object_store_bytes}",
            "--disable-usage-stats",
            *arguments,
        ]
        environment = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=self.start_timeout,
            env=environment,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"`ray start {' '.join(arguments)}` failed ({done.returncode}):\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
            )

    def _wait_for_nodes(self) -> None:
        """Wait until every node has registered with the head (``ray start`` returns before)."""
        deadline = time.monotonic() + self.start_timeout
        script = (
            "import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR', "
            "log_to_driver=False); print(sum(1 for n in ray.nodes() if n['Alive']))"
        )
        while True:
            done = subprocess.run(
                [self.python, "-c", script, self.address],
                capture_output=True,
                text=True,
                timeout=self.start_timeout,
                check=False,
            )
            lines = done.stdout.strip().splitlines()
            if lines and lines[-1].isdigit() and int(lines[-1]) >= self.nodes:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {lines[-1:] or 'no'} of {self.nodes} Ray nodes came up")
            time.sleep(1)

    def pids(self) -> list[int]:
        """This cluster's processes: those naming its directory or ports, and descendants."""
        if not self.directory:
            return []
        marks = [self.directory.encode()] + [f":{p}".encode() for p in self._ports]
        parents: dict[int, int] = {}
        own: set[int] = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read()
                with open(f"/proc/{pid}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            parents[pid] = int(stat.rsplit(b")", 1)[1].split()[1])
            if pid != os.getpid() and any(m in cmdline for m in marks):
                own.add(pid)
        grown = True
        while grown:
            children = {p for p, parent in parents.items() if parent in own and p not in own}
            grown = bool(children)
            own |= children
        own.discard(os.getpid())
        return sorted(own)

    def stop(self, timeout: float = 5) -> None:
        """Stop every process of the cluster (SIGTERM, then SIGKILL after ``timeout``
        seconds) and remove its directory. Idempotent; never raises for a missing process."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            pids = self.pids()
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + timeout
            while pids and time.monotonic() < deadline:
                pids = [p for p in pids if _alive(p)]
                time.sleep(0.2)
            if not pids:
                break
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = ""

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False
