"""Peak resident memory of a process tree, sampled from /proc.

Every ~50 ms the sampler finds the processes descended from one root (a peer's process)
and sums their RSS per role: `engine` (a `quiver` or `java` process, or the root itself for
an in-process peer), `workers` (processes an engine started: UDF workers), `driver` (the
root when it is part of the system measured, e.g. PySpark's driver) and `launcher` (the root
when it only starts the system, e.g. the process that runs `quiver run`). `total` is the sum
over every role but `launcher`. The largest sum seen is kept for each.

Workers forked by quiver's fork server are the server's children, not the engine's. A child of
a fork server counts as a worker of an engine of the tree when its stdout is a pipe the engine
holds open: the engine gives each worker its own log pipe, so the children the server forks for
other runs (other tests, other users of the same server) are left out.

A fork server is known by its command line (``-m quiver.forkserver``), which it has only from
its exec on: a server the run starts is first seen as a copy of the engine, so a process is
also checked when it forks a child (by then it has exec'd).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
ENGINE_COMMANDS = ("quiver", "java")
ROLES = ("total", "engine", "workers", "driver", "launcher")


@dataclass
class ProcessInfo:
    """What one /proc/PID/stat read tells: parent, command name and resident pages."""

    ppid: int
    command: str
    rss_bytes: int


def read_stat(pid: int) -> ProcessInfo | None:
    """Read /proc/PID/stat; None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            text = stat.read().decode(errors="replace")
    except OSError:
        return None
    # The command name is in parentheses and may hold spaces: split after the last ')'.
    command = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): ppid is field 4, rss (pages) field 24.
    return ProcessInfo(int(fields[1]), command, int(fields[21]) * PAGE_SIZE)


@dataclass
class RssPeaks:
    """The largest RSS sums seen, in bytes, per role."""

    peaks: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLES, 0))
    samples: int = 0

    def add(self, sums: dict[str, int]) -> None:
        """Fold one sample's sums into the peaks."""
        self.samples += 1
        for role, value in sums.items():
            self.peaks[role] = max(self.peaks[role], value)

    def megabytes(self) -> dict[str, float]:
        """Return the peaks in MiB, rounded to 0.1."""
        return {role: round(value / (1 << 20), 1) for role, value in self.peaks.items()}


class ProcessTreeSampler:
    """Samples the tree under `root_pid` on a thread until stop()."""

    # 10 ms: a warm quiver run at small scales lasts ~60 ms, and a worker forked for it must be
    # seen alive; a sample of a small tree costs ~0.15 ms, so this costs ~1.5% of one core.
    def __init__(self, root_pid: int, root_role: str, interval: float = 0.01) -> None:
        self.root_pid = root_pid
        self.root_role = root_role
        self.interval = interval
        self.result = RssPeaks()
        # Samples are also filed under the phase set here (a scenario's key), if any.
        self.phase: str | None = None
        self.by_phase: dict[str, RssPeaks] = {}
        self._parents: dict[int, int] = {}
        self._fork_servers: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def start(self) -> ProcessTreeSampler:
        """Start sampling."""
        self._thread.start()
        return self

    def stop(self) -> RssPeaks:
        """Stop sampling and return the peaks."""
        self._stop.set()
        self._thread.join()
        return self.result

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def enter_phase(self, phase: str | None) -> None:
        """File the next samples under `phase` (None: none).

        Samples right before and right after the switch, so a phase shorter than the
        interval still has one sample at its end and one at its start.
        """
        self.sample()
        self.phase = phase
        self.sample()

    def sample(self) -> None:
        """Take one sample of the tree (thread-safe)."""
        with self._lock:
            self._sample()

    def _sample(self) -> None:
        """Walk the tree breadth first from the root and add up RSS per role."""
        children = self._children_by_parent()
        sums = dict.fromkeys(ROLES, 0)
        queue: list[tuple[int, str | None]] = [(self.root_pid, None)]
        for pid, inherited in queue:  # grows while iterating
            info = read_stat(pid)
            if info is None:
                continue
            role = inherited or self._role(pid, info)
            sums[role] += info.rss_bytes
            if role != "launcher":
                sums["total"] += info.rss_bytes
            below = "workers" if role in ("engine", "workers") else None
            queue.extend((child, below) for child in children.get(pid, ()))
            if role == "engine" and info.command == "quiver":
                queue.extend((child, "workers") for child in self._forked_workers(pid, children))
        if any(sums.values()):
            self.result.add(sums)
            phase = self.phase
            if phase is not None:
                self.by_phase.setdefault(phase, RssPeaks()).add(sums)

    def _role(self, pid: int, info: ProcessInfo) -> str:
        """Return the role of a process that no engine started."""
        if pid == self.root_pid:
            return self.root_role
        return "engine" if info.command in ENGINE_COMMANDS else "driver"

    def _forked_workers(self, engine: int, children: dict[int, list[int]]) -> list[int]:
        """Return the fork servers' children whose stdout is a pipe `engine` holds open."""
        engine_pipes = _open_pipes(engine)
        # Read on every sample: a child just forked still has the server's stdout.
        return [
            child
            for server in self._fork_servers
            for child in children.get(server, ())
            if _output_pipe(child) in engine_pipes
        ]

    def _children_by_parent(self) -> dict[int, list[int]]:
        """Map each parent pid to its children, reading /proc/PID/stat once per new pid."""
        alive = {int(name) for name in os.listdir("/proc") if name.isdigit()}
        for pid in list(self._parents):
            if pid not in alive:
                del self._parents[pid]
        self._fork_servers &= alive
        for pid in alive - self._parents.keys():
            info = read_stat(pid)
            parent = info.ppid if info is not None else -1
            self._parents[pid] = parent
            if _is_fork_server(pid):
                self._fork_servers.add(pid)
            # A server seen first between its fork and its exec is known by its first child.
            if parent > 1 and parent not in self._fork_servers and _is_fork_server(parent):
                self._fork_servers.add(parent)
        children: dict[int, list[int]] = {}
        for pid, parent in self._parents.items():
            children.setdefault(parent, []).append(pid)
        return children


def _is_fork_server(pid: int) -> bool:
    """Tell whether ``pid`` is a quiver fork server (``python -m quiver.forkserver ...``)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"quiver.forkserver" in cmdline.read()
    except OSError:
        return False


def _output_pipe(pid: int) -> str | None:
    """Return the pipe on ``pid``'s stdout ("pipe:[INODE]"), None when it is not a pipe."""
    try:
        target = os.readlink(f"/proc/{pid}/fd/1")
    except OSError:
        return None
    return target if target.startswith("pipe:") else None


def _open_pipes(pid: int) -> set[str]:
    """Return the pipes ``pid`` holds open ("pipe:[INODE]")."""
    pipes = set()
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return pipes
    for fd in descriptors:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("pipe:"):
            pipes.add(target)
    return pipes
