"""Per-UDF Python environments: one virtual environment per distinct requirement set.

``@quiver.udf(..., requirements=["numpy<2"])`` (or ``quiver run --requirements FILE``) runs a
UDF's workers in a virtual environment that has those packages. quiver builds it once per
requirement set and Python version and keeps it under ``$XDG_CACHE_HOME/quiver/envs``
(``~/.cache/quiver/envs``; ``QUIVER_ENV_DIR`` overrides), see docs/environments.md.

An environment is built in a temporary directory and renamed into place only once it is
complete and verified, so a build that was killed half-way is never used: its leftovers are
removed by the next build of the same set (builds of one set are serialised by a lock file).
It installs with ``uv`` when it is on PATH, else with pip. It sees the packages of the
interpreter that built it (quiver itself, pyarrow, pandas) after its own: what the
requirements install shadows them, and what they do not name is not downloaded again.

``python -m quiver.envs resolve [--requirements FILE] REF...`` is how ``quiver run`` learns
where each Python UDF runs: it reads each UDF's ``requirements=`` from its source without
importing it, builds what is missing and prints one line per REF, tab-separated: its index,
the environment's interpreter (``-`` when the UDF needs none), and ``-``, or ``sandbox`` and
the paths its sandboxed worker may read when it declares ``@quiver.udf(sandbox=...)``
(:func:`declared_sandbox`).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from quiver.errors import QuiverError

MARKER = "quiver-env.json"
_TMP_PREFIX = ".tmp-"


class EnvironmentBuildError(QuiverError):
    """A UDF's Python environment could not be built (the message names the package)."""


# ---- requirement sets ----


def normalise(requirements: Iterable[str]) -> tuple[str, ...]:
    """Return a requirement set in one canonical form: no spaces, lower case, sorted, unique."""
    seen = set()
    for line in requirements:
        text = re.sub(r"\s+", "", line.split("#", 1)[0])
        if text:
            name = _requirement_name(text)
            # Names compare case- and separator-insensitively (PEP 503); the rest may be a URL.
            seen.add(re.sub(r"[-_.]+", "-", name).lower() + text[len(name) :])
    return tuple(sorted(seen))


def read_requirements_file(path: str | os.PathLike[str]) -> list[str]:
    """Read a requirements file: one requirement a line, ``#`` comments, blank lines."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EnvironmentBuildError(
            f"cannot read the requirements file {path}: {exc.strerror}"
        ) from None
    requirements = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip() if not line.strip().startswith("#") else ""
        if not text:
            continue
        if text.startswith("-"):
            raise EnvironmentBuildError(
                f"{path}:{number}: pip options such as {text.split()[0]!r} are not supported in "
                "a quiver requirements file; set them in pip's or uv's own configuration "
                "(PIP_INDEX_URL, PIP_FIND_LINKS, UV_INDEX_URL, ...)"
            )
        requirements.append(text)
    return requirements


def _parent_site_dirs() -> list[str]:
    """The site directories of this interpreter, which a new environment sees after its own."""
    found = []
    for directory in [*site.getsitepackages(), sysconfig.get_path("purelib")]:
        if directory not in found and os.path.isdir(directory):
            found.append(directory)
    return found


def env_key(requirements: Sequence[str]) -> str:
    """Name the environment of a requirement set: a hash of it, the Python and its parent."""
    identity = {
        "requirements": list(normalise(requirements)),
        "python": sys.version,
        "implementation": sys.implementation.name,
        "parent": _parent_site_dirs(),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"py{sys.version_info[0]}{sys.version_info[1]}-{digest[:16]}"


def cache_root() -> Path:
    """Where environments live: $QUIVER_ENV_DIR, else $XDG_CACHE_HOME/quiver/envs."""
    explicit = os.environ.get("QUIVER_ENV_DIR")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "quiver" / "envs"


# ---- building ----


def ensure_env(
    requirements: Sequence[str], *, quiet: bool = False, root: Path | None = None
) -> Path:
    """Return the interpreter of the environment for ``requirements``, building it if needed.

    Raises EnvironmentBuildError, naming the requirement that failed and the build log.
    """
    requirements = normalise(requirements)
    root = root or cache_root()
    key = env_key(requirements)
    final = root / key
    python = final / "bin" / "python"
    if (final / MARKER).is_file() and python.exists():
        return python
    root.mkdir(parents=True, exist_ok=True)
    with _locked(root / f"{key}.lock", quiet):
        if (final / MARKER).is_file() and python.exists():
            return python  # another quiver built it while this one waited
        _remove_leftovers(root, key, quiet)
        _build(requirements, root, key, quiet)
    return python


@contextlib.contextmanager
def _locked(path: Path, quiet: bool) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (one build per requirement set at a time)."""
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(quiet, f"waiting for another quiver process building {path.stem}")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_leftovers(root: Path, key: str, quiet: bool) -> None:
    """Delete what a killed build of ``key`` left: temporary dirs, an unmarked final dir."""
    leftovers = list(root.glob(f"{_TMP_PREFIX}{key}-*"))
    final = root / key
    if final.exists() and not (final / MARKER).is_file():
        leftovers.append(final)
    for path in leftovers:
        _say(quiet, f"removing the unfinished environment {path}")
        shutil.rmtree(path, ignore_errors=True)


def _build(requirements: tuple[str, ...], root: Path, key: str, quiet: bool) -> None:
    """Build the environment in a temporary directory, verify it, rename it into place."""
    started = time.monotonic()
    tmp = root / f"{_TMP_PREFIX}{key}-{os.getpid()}"
    log_path = root / f"{key}.log"
    shown = ", ".join(requirements) or "(no packages)"
    installer = "uv" if shutil.which("uv") else "pip"
    _say(quiet, f"building a Python environment for {shown} with {installer} in {root / key}")
    with open(log_path, "w", encoding="utf-8") as log:
        try:
            _create_venv(tmp, installer, log, quiet)
            _link_parent(tmp)
            if requirements:
                _install(tmp, requirements, installer, log, log_path, quiet)
            _verify(tmp, requirements, log_path)
            marker = {"requirements": list(requirements), "python": sys.version, "key": key}
            (tmp / MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
            os.rename(tmp, root / key)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    _say(quiet, f"environment {key} ready in {time.monotonic() - started:.1f} s")


def _create_venv(tmp: Path, installer: str, log: IO[str], quiet: bool) -> None:
    """Create an empty virtual environment of this interpreter's Python."""
    if installer == "uv":
        command = ["uv", "venv", "--quiet", "--python", sys.executable, str(tmp)]
    else:
        # pip runs from this interpreter (pip --python), so the environment needs none.
        with_pip = importlib.util.find_spec("pip") is None
        command = [_base_python(), "-m", "venv", str(tmp)]
        if not with_pip:
            command.insert(3, "--without-pip")
    _run(command, log, quiet, what="creating the virtual environment", log_path=None)


def _base_python() -> str:
    """The interpreter to make environments with (a venv's own python makes nested venvs)."""
    return getattr(sys, "_base_executable", None) or sys.executable


def _site_packages(env: Path) -> Path:
    """The site-packages directory of an environment of this Python version."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return env / "lib" / version / "site-packages"


def _link_parent(env: Path) -> None:
    """Let the environment see this interpreter's packages after its own (a .pth file)."""
    target = _site_packages(env)
    target.mkdir(parents=True, exist_ok=True)
    lines = [f"import site; site.addsitedir({d!r})" for d in _parent_site_dirs()]
    # The quiver package itself, wherever it is imported from here (a source checkout too).
    package_root = str(Path(__file__).resolve().parent.parent)
    lines.append(f"import sys; p = {package_root!r}; p in sys.path or sys.path.append(p)")
    (target / "_quiver_parent.pth").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _install(
    env: Path,
    requirements: tuple[str, ...],
    installer: str,
    log: IO[str],
    log_path: Path,
    quiet: bool,
) -> None:
    """Install the requirements into the environment."""
    python = str(env / "bin" / "python")
    if installer == "uv":
        command = ["uv", "pip", "install", "--python", python, *requirements]
    elif importlib.util.find_spec("pip") is not None:
        command = [sys.executable, "-m", "pip", "--python", python, "install"]
        command += ["--disable-pip-version-check", "--no-input", *requirements]
    else:
        command = [python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
        command += list(requirements)
    _run(command, log, quiet, what=f"installing {', '.join(requirements)}", log_path=log_path)


def _run(command: list[str], log: IO[str], quiet: bool, what: str, log_path: Path | None) -> None:
    """Run one build step, its output to the log (and to stderr, indented, unless quiet)."""
    log.write(f"$ {' '.join(command)}\n")
    log.flush()
    try:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
        )
    except OSError as exc:
        raise EnvironmentBuildError(f"{what} failed: cannot run {command[0]}: {exc}") from None
    output = []
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        log.write(line)
        if not quiet:
            sys.stderr.write(f"  {line}")
    status = process.wait()
    log.flush()
    if status != 0:
        where = f"; the full log is {log_path}" if log_path is not None else ""
        raise EnvironmentBuildError(
            f"{what} failed (exit status {status}): {_reason(output)}{where}"
        )


def _reason(output: list[str]) -> str:
    """Pick the lines of an installer's output that say what went wrong."""
    errors = [line.strip() for line in output if re.match(r"\s*(ERROR|error|×|╰─▶)", line)]
    lines = errors or [line.strip() for line in output if line.strip()][-3:]
    return " / ".join(lines)[:1200] or "(no output)"


_VERIFY = """
import importlib.metadata as m, json, sys
import pyarrow, quiver.worker
found = {}
for name in sys.argv[1:]:
    try:
        found[name] = m.version(name)
    except m.PackageNotFoundError:
        found[name] = None
print(json.dumps(found))
"""


def _verify(env: Path, requirements: tuple[str, ...], log_path: Path) -> None:
    """Check that the environment imports quiver and pyarrow and has every requirement."""
    names = [_requirement_name(r) for r in requirements]
    result = subprocess.run(
        [str(env / "bin" / "python"), "-c", _VERIFY, *names],
        capture_output=True,
        text=True,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise EnvironmentBuildError(
            f"the new environment does not import quiver and pyarrow: "
            f"{(result.stderr.strip().splitlines() or ['?'])[-1]} (build log: {log_path})"
        )
    found = json.loads(result.stdout.strip().splitlines()[-1])
    for requirement, name in zip(requirements, names, strict=True):
        version = found.get(name)
        if version is None:
            raise EnvironmentBuildError(
                f"requirement {requirement!r}: package {name!r} is not in the new environment "
                f"after the install (build log: {log_path})"
            )
        if not _satisfies(requirement, version):
            raise EnvironmentBuildError(
                f"requirement {requirement!r}: the environment has {name} {version}, which "
                f"does not satisfy it (build log: {log_path})"
            )


def _requirement_name(requirement: str) -> str:
    """The distribution name a requirement string starts with."""
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    return match.group(0) if match else requirement


def _satisfies(requirement: str, version: str) -> bool:
    """Tell whether ``version`` meets the requirement's specifier (True when unknown)."""
    try:
        from packaging.requirements import Requirement
    except ImportError:
        try:
            from pip._vendor.packaging.requirements import Requirement  # type: ignore[no-redef]
        except ImportError:
            return True  # nothing to check with: the installer's word stands
    try:
        return Requirement(requirement).specifier.contains(version, prereleases=True)
    except Exception:  # noqa: BLE001 - URLs and other forms the checker does not know
        return True


def _say(quiet: bool, message: str) -> None:
    """Report progress on stderr."""
    if not quiet:
        print(f"quiver: {message}", file=sys.stderr, flush=True)


# ---- reading requirements= without importing the UDF ----


def declared_requirements(ref: str) -> tuple[str, ...]:
    """Return the ``requirements=`` a UDF's decorator declares, read from its source.

    ``ref`` is ``PATH.py:NAME`` or ``module:NAME`` (``NAME`` may be dotted). The file is
    parsed, not imported: its imports may need the very packages the environment will have.
    """
    found = _declared_keyword(ref, "requirements")
    if found is None:
        return ()
    path, qualname, value = found
    try:
        requirements = ast.literal_eval(value)
    except ValueError:
        raise EnvironmentBuildError(
            f"{path}:{value.lineno}: requirements= of UDF {qualname} must be a literal list "
            "of strings for quiver to read it without importing the file"
        ) from None
    if isinstance(requirements, str) or not all(isinstance(r, str) for r in requirements):
        raise EnvironmentBuildError(
            f"{path}:{value.lineno}: requirements= of UDF {qualname} must be a list of "
            "requirement strings"
        )
    return tuple(requirements)


def declared_sandbox(ref: str) -> tuple[str, ...] | None:
    """Return what a UDF's ``@quiver.udf(sandbox=...)`` grants, read from its source: None when
    it declares no sandbox, else the absolute paths its sandboxed worker may read besides the
    system and the import path (the UDF file's folder first, then the declared paths, relative
    ones taken from that folder).

    Read before any worker starts, so that the UDF's module never runs outside the sandbox it
    asked for; a ``sandbox=`` that is not a literal is refused rather than guessed.
    """
    found = _declared_keyword(ref, "sandbox")
    if found is None:
        return None
    path, qualname, value = found
    try:
        declared = ast.literal_eval(value)
    except ValueError:
        declared = None
    valid = isinstance(declared, bool) or (
        isinstance(declared, (list, tuple))
        and all(isinstance(p, str) and p and not set(p) & set(":\t\n") for p in declared)
    )
    if not valid:
        raise EnvironmentBuildError(
            f"{path}:{value.lineno}: sandbox= of UDF {qualname} must be True, False or a "
            "literal list of paths (without ':') for quiver to read it before the UDF's file "
            "runs; write it out in the decorator"
        )
    if declared is False:
        return None
    folder = os.path.dirname(path)
    granted = (
        [] if declared is True else [os.path.normpath(os.path.join(folder, p)) for p in declared]
    )
    return (folder, *granted)


def _declared_keyword(ref: str, keyword: str) -> tuple[str, str, ast.expr] | None:
    """Find ``keyword=`` in the decorator of the UDF ``ref`` names, without importing it:
    the file, the UDF's qualified name and the keyword's value; None when it is not there."""
    target, _, qualname = ref.rpartition(":")
    path = _source_path(target)
    if path is None:
        return None
    try:
        tree = ast.parse(Path(path).read_bytes(), filename=path)
    except (OSError, SyntaxError, ValueError):
        return None  # the worker reports what is wrong with the file when it loads it
    node = _find_definition(tree, qualname.split("."))
    if node is None:
        return None
    for decorator in node.decorator_list:
        value = _decorator_keyword(decorator, keyword)
        if value is not None:
            return path, qualname, value
    return None


def _source_path(target: str) -> str | None:
    """The file a ``PATH.py`` or ``module`` target names, without importing it if a path."""
    if target.endswith(".py") or "/" in target:
        return os.path.abspath(target)
    try:
        spec = importlib.util.find_spec(target)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    return origin if origin and origin.endswith(".py") else None


def _find_definition(tree: ast.Module, parts: list[str]) -> Any:
    """Find the class or function ``Outer.inner`` in a module's syntax tree."""
    body: list[ast.stmt] = tree.body
    node = None
    for part in parts:
        node = next(
            (
                n
                for n in body
                if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and n.name == part
            ),
            None,
        )
        if node is None:
            return None
        body = node.body
    return node


def _decorator_keyword(decorator: ast.expr, keyword: str) -> ast.expr | None:
    """The value of ``keyword=`` in ``@quiver.udf(...)`` / ``@udf(...)`` (or a grouped or
    table kind's decorator), if there."""
    if not isinstance(decorator, ast.Call):
        return None
    func = decorator.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if name not in ("udf", "grouped_map", "udaf", "udtf"):
        return None
    return next((k.value for k in decorator.keywords if k.arg == keyword), None)


# ---- the command quiver run calls ----


def resolve(refs: Sequence[str], requirements_file: str | None, quiet: bool) -> list[str | None]:
    """Return, per UDF reference, the interpreter of its environment (None: none needed).

    A UDF's set is the union of the requirements file's and its decorator's.
    """
    common = read_requirements_file(requirements_file) if requirements_file else []
    pythons: list[str | None] = []
    built: dict[tuple[str, ...], str] = {}
    for ref in refs:
        requirements = normalise([*common, *declared_requirements(ref)])
        if not requirements:
            pythons.append(None)
            continue
        if requirements not in built:
            built[requirements] = str(ensure_env(requirements, quiet=quiet))
        pythons.append(built[requirements])
    return pythons


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m quiver.envs resolve|build``: see the module's documentation."""
    parser = argparse.ArgumentParser(prog="python -m quiver.envs")
    commands = parser.add_subparsers(dest="command", required=True)
    resolve_parser = commands.add_parser("resolve", help="the environment of each UDF reference")
    resolve_parser.add_argument("--requirements", help="a requirements file for every UDF")
    resolve_parser.add_argument("--quiet", action="store_true")
    resolve_parser.add_argument("refs", nargs="*", help="PATH.py:NAME or module:NAME")
    build_parser = commands.add_parser("build", help="build (or find) one environment")
    build_parser.add_argument("requirements", nargs="*")
    build_parser.add_argument("-r", "--requirements-file")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            extra = read_requirements_file(args.requirements_file) if args.requirements_file else []
            print(ensure_env([*args.requirements, *extra]))
            return 0
        pythons = resolve(args.refs, args.requirements, args.quiet)
        for index, (python, ref) in enumerate(zip(pythons, args.refs, strict=True)):
            sandbox = declared_sandbox(ref) if ref != "-:-" else None
            if sandbox is not None and any("\t" in p or "\n" in p for p in sandbox):
                raise EnvironmentBuildError(
                    f"UDF {ref} declares a sandbox, but its folder's path holds a tab or a "
                    "newline, which quiver run cannot pass on; move the file"
                )
            granted = "-" if sandbox is None else "\t".join(("sandbox", *sandbox))
            print(f"{index}\t{python or '-'}\t{granted}")
        return 0
    except EnvironmentBuildError as exc:
        print(f"quiver: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
