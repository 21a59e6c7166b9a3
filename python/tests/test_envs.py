"""Per-UDF Python environments (quiver.envs): real builds from wheels made in the test's own
directory (no network), the cache, failing installs, and builds killed half-way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from wheelhouse import apply, make_wheel, offline_environment, restore

from quiver import envs


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Make environments build offline from a wheelhouse with quiverdemo 1.0 and 2.0."""
    base = tmp_path_factory.mktemp("envs")
    wheels = base / "wheels"
    wheels.mkdir()
    make_wheel(wheels, "quiverdemo", "1.0")
    make_wheel(wheels, "quiverdemo", "2.0")
    old = apply(offline_environment(wheels, base / "cache"))
    try:
        yield base / "cache"
    finally:
        restore(old)


def run_python(python: Path, code: str) -> str:
    return subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_an_environment_is_built_once_verified_and_reused(
    offline: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    python = envs.ensure_env(["quiverdemo<2"])
    assert python.parent.parent.parent == offline
    assert (python.parent.parent / envs.MARKER).is_file()
    assert "building a Python environment for quiverdemo<2" in capfd.readouterr().err
    # It has the requirement, and quiver and pyarrow from the interpreter that built it.
    out = run_python(python, "import quiverdemo, quiver.worker, pyarrow; print(quiverdemo.VERSION)")
    assert out == "1.0"
    # The same set in another spelling is the same environment, found without building.
    assert envs.ensure_env(["QuiverDemo <2 "]) == python
    assert "building" not in capfd.readouterr().err


def test_conflicting_sets_get_their_own_environments(offline: Path) -> None:
    old = envs.ensure_env(["quiverdemo<2"])
    new = envs.ensure_env(["quiverdemo==2.0"])
    assert old != new
    assert run_python(new, "import quiverdemo; print(quiverdemo.VERSION)") == "2.0"
    assert run_python(old, "import quiverdemo; print(quiverdemo.VERSION)") == "1.0"


@pytest.mark.parametrize(
    ("requirement", "named"),
    [("quiver-no-such-package-xyz", "quiver-no-such-package-xyz"), ("quiverdemo==9.9", "9.9")],
)
def test_a_failing_install_names_the_package_and_the_log(
    offline: Path, requirement: str, named: str
) -> None:
    with pytest.raises(envs.EnvironmentBuildError) as caught:
        envs.ensure_env([requirement], quiet=True)
    message = str(caught.value)
    assert named in message and "the full log is" in message
    log = Path(message.rsplit("the full log is ", 1)[1].strip())
    assert log.is_file() and named in log.read_text()
    key = envs.env_key([requirement])
    assert not (offline / key).exists()
    assert not list(offline.glob(f".tmp-{key}-*"))


def test_a_build_killed_mid_install_is_never_used_and_is_cleaned_up(
    offline: Path, tmp_path: Path
) -> None:
    # An installer that hangs: `uv` on PATH is preferred; this one makes the venv, then sleeps.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "uv").write_text(
        textwrap.dedent(f"""\
            #!/bin/sh
            if [ "$1" = venv ]; then
              for last; do :; done
              exec {sys.executable} -m venv --without-pip "$last"
            fi
            echo "installing slowly"; sleep 60
            """)
    )
    (fake / "uv").chmod(0o755)
    requirements = ["quiverdemo>=1"]
    key = envs.env_key(requirements)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    build = subprocess.Popen(
        [sys.executable, "-m", "quiver.envs", "build", *requirements],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert build.stderr is not None
    for line in build.stderr:
        if "installing slowly" in line:
            break
    os.killpg(build.pid, signal.SIGKILL)
    build.wait()
    leftovers = list(offline.glob(f".tmp-{key}-*"))
    assert leftovers, "the killed build left its temporary directory"
    assert not (offline / key).exists()
    # An unmarked final directory (say, copied half-way) is not used either.
    (offline / key / "bin").mkdir(parents=True)
    (offline / key / "bin" / "python").symlink_to(sys.executable)
    python = envs.ensure_env(requirements, quiet=True)
    assert (offline / key / envs.MARKER).is_file()
    assert run_python(python, "import quiverdemo; print(quiverdemo.VERSION)") == "2.0"
    assert not any(p.exists() for p in leftovers)


def test_a_build_waits_for_another_building_the_same_set(offline: Path) -> None:
    requirements = ["quiverdemo==1.0"]
    key = envs.env_key(requirements)
    offline.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
            "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(1.5)",
            str(offline / f"{key}.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    started = time.monotonic()
    envs.ensure_env(requirements, quiet=True)
    assert time.monotonic() - started >= 1.0
    holder.wait()


def test_requirements_are_read_from_the_source_without_importing_it(tmp_path: Path) -> None:
    source = tmp_path / "models.py"
    source.write_text(
        textwrap.dedent("""\
            import not_installed_anywhere  # the environment will have it
            import quiver
            from quiver import udf

            @quiver.udf(returns="int64", requirements=["numpy<2", "scikit-learn==1.7"])
            class Model:
                def __call__(self, x): return x

            @udf(returns="int64", requirements=("tiny",))
            def plain(x): return x

            def undecorated(x): return x

            class Outer:
                @quiver.udf(returns="int64", requirements=["inner-pkg"])
                def inner(x): return x

            NAMES = ["x"]

            @quiver.udf(returns="int64", requirements=NAMES)
            def computed(x): return x
            """)
    )
    assert envs.declared_requirements(f"{source}:Model") == ("numpy<2", "scikit-learn==1.7")
    assert envs.declared_requirements(f"{source}:plain") == ("tiny",)
    assert envs.declared_requirements(f"{source}:undecorated") == ()
    assert envs.declared_requirements(f"{source}:Outer.inner") == ("inner-pkg",)
    assert envs.declared_requirements(f"{source}:missing") == ()
    with pytest.raises(envs.EnvironmentBuildError, match="must be a literal list"):
        envs.declared_requirements(f"{source}:computed")


def test_requirements_files_and_normalisation(tmp_path: Path) -> None:
    text = "# pinned\nNumPy < 2   # old ABI\n\nscikit_learn==1.7\n"
    (tmp_path / "req.txt").write_text(text)
    read = envs.read_requirements_file(tmp_path / "req.txt")
    assert envs.normalise(read) == ("numpy<2", "scikit-learn==1.7")
    assert envs.env_key(read) == envs.env_key(["scikit-learn==1.7", "numpy<2"])
    assert envs.env_key(read) != envs.env_key(["numpy<2"])
    (tmp_path / "opts.txt").write_text("--index-url https://example.org\n")
    with pytest.raises(envs.EnvironmentBuildError, match="pip options"):
        envs.read_requirements_file(tmp_path / "opts.txt")
