"""What the benchmark ran on: CPU, cores, memory, OS, library versions, quiver's commit."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("pyarrow", "pandas", "numpy", "pyspark", "duckdb", "polars")


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float:
    """Return the machine's memory (MemTotal) in GiB."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    return 0.0


def os_name() -> str:
    """Return the distribution's pretty name and the kernel release."""
    name = platform.system()
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                name = line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return f"{name}, kernel {platform.release()}"


def package_versions() -> dict[str, str]:
    """Return the installed versions of the peers' Python packages."""
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    versions["java"] = java_version()
    return versions


def java_version() -> str:
    """Return the first line of `java -version`, which PySpark runs on."""
    try:
        done = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    lines = (done.stderr or done.stdout).strip().splitlines()
    return lines[0] if lines else "unknown"


def git_commit(repository: Path) -> str:
    """Return quiver's commit, with "+dirty" when the work tree has changes."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(repository), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(repository), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if status else "")


def describe_machine(repository: Path) -> dict:
    """Return everything about the machine and software the results depend on."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "os": os_name(),
        "versions": package_versions(),
        "quiver_commit": git_commit(repository),
    }


def machine_line(machine: dict) -> str:
    """Return the one-line summary printed under every results table."""
    versions = machine["versions"]
    software = ", ".join(f"{name} {version}" for name, version in versions.items())
    commit = machine["quiver_commit"]
    short = commit[:12] + ("+dirty" if commit.endswith("+dirty") else "")
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB, "
        f"{machine['os']}; {software}; quiver {short}"
    )
