"""@quiver.udf(sandbox=...): one UDF sandboxed beside ordinary ones, through `quiver run` and
quiver.Session; and the sandbox with requirements environments.

A map holds a UDF that reaches for the network and the home folder's key unsandboxed (and
gets them) beside one declared sandboxed (refused, the error naming the UDF and the rule).
A UDF that declares a sandbox in a way the engine cannot read before the run is refused by
its worker, never run unsandboxed.
"""

from __future__ import annotations

import ctypes
import importlib.util
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from quiver_e2e import ROOT, assert_failed, assert_ok, people_table, write_table

import quiver


def _landlock_abi() -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    return max(int(libc.syscall(444, None, ctypes.c_size_t(0), 1)), 0)


pytestmark = pytest.mark.skipif(
    _landlock_abi() < 4, reason="the sandbox needs Landlock ABI 4 (Linux >= 6.7)"
)

_wheelhouse_spec = importlib.util.spec_from_file_location(
    "wheelhouse", ROOT / "python" / "tests" / "wheelhouse.py"
)
wheelhouse = importlib.util.module_from_spec(_wheelhouse_spec)
_wheelhouse_spec.loader.exec_module(wheelhouse)

UDFS = '''
import os
import socket
from pathlib import Path

import pyarrow as pa

import quiver


def _reach() -> str:
    """What this process may do: read the home folder's key, open a network socket."""
    found = []
    try:
        Path(os.path.expanduser("~/.ssh/id_rsa")).read_text()
        found.append("key")
    except PermissionError:
        found.append("no key")
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
        found.append("socket")
    except PermissionError:
        found.append("no socket")
    sandbox = os.path.basename(os.environ.get("TMPDIR", ""))
    found.append("sandboxed" if sandbox.startswith("quiver-sandbox-") else "unsandboxed")
    return ",".join(found)


@quiver.udf(returns="string")
def plain(name: pa.Array) -> pa.Array:
    return pa.array([_reach()] * len(name))


@quiver.udf(returns="string", sandbox=True)
def boxed(name: pa.Array) -> pa.Array:
    return pa.array([_reach()] * len(name))


@quiver.udf(returns="string", sandbox=True)
def boxed_connect(name: pa.Array) -> pa.Array:
    with socket.create_connection(("127.0.0.1", 9), timeout=1):
        pass
    return name


@quiver.udf(returns="string", sandbox=True)
def boxed_key(name: pa.Array) -> pa.Array:
    return pa.array([Path(os.path.expanduser("~/.ssh/id_rsa")).read_text()] * len(name))


@quiver.udf(returns="string", sandbox=["data"])
def boxed_lookup(name: pa.Array) -> pa.Array:
    """May read data/ beside its file (a relative path is taken from the UDF's file)."""
    text = (Path(__file__).parent / "data" / "lookup.txt").read_text().strip()
    return pa.array([text] * len(name))


def _hidden(name: pa.Array) -> pa.Array:
    return pa.array([_reach()] * len(name))


# Declared by a call, not a decorator: quiver cannot read it before the run; the worker refuses.
hidden = quiver.udf(returns="string", sandbox=True)(_hidden)
'''

UNSANDBOXED = "key,socket,unsandboxed"
SANDBOXED = "no key,no socket,sandboxed"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A fake home with a private key, the file a stolen-credentials UDF would go for."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("-----BEGIN FAKE KEY-----\n")
    return home


@pytest.fixture
def udfs(tmp_path: Path) -> Path:
    folder = tmp_path / "udfs"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "lookup.txt").write_text("looked up\n")
    path = folder / "mixed.py"
    path.write_text(textwrap.dedent(UDFS))
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return write_table(people_table(50), tmp_path / "in.parquet")


@pytest.fixture
def runner(quiver, home):
    quiver.env["HOME"] = str(home)
    return quiver


# ---- quiver run ----


@pytest.mark.parametrize("transport", ["uds", "shm", "grpc"])
def test_run_sandboxes_the_declared_udf_only(runner, source, udfs, transport):
    out = source.parent / "out.parquet"
    result = runner(
        "run", source, "--transport", transport, "--workers", "2",
        "--udf", f"p={udfs}:plain(name)", "--udf", f"b={udfs}:boxed(name)",
        "--udf", f"l={udfs}:boxed_lookup(name)", "-o", out,
    )  # fmt: skip
    assert_ok(result)
    table = pq.read_table(out)
    assert set(table["p"].to_pylist()) == {UNSANDBOXED}
    assert set(table["b"].to_pylist()) == {SANDBOXED}
    assert set(table["l"].to_pylist()) == {"looked up"}


def test_run_refuses_the_declared_udfs_socket_naming_it_and_the_rule(runner, source, udfs):
    out = source.parent / "out.parquet"
    result = runner(
        "run", source, "--udf", f"p={udfs}:plain(name)",
        "--udf", f"c={udfs}:boxed_connect(name)", "-o", out,
    )  # fmt: skip
    assert_failed(result, out, "'c'", "PermissionError", "network rule", "quiver sandbox")


def test_run_refuses_the_declared_udfs_read_of_the_home_key(runner, source, udfs, home):
    out = source.parent / "out.parquet"
    result = runner(
        "run", source, "--udf", f"p={udfs}:plain(name)",
        "--udf", f"k={udfs}:boxed_key(name)", "-o", out,
    )  # fmt: skip
    key = home / ".ssh" / "id_rsa"
    assert_failed(result, out, "'k'", "PermissionError", "file system rule", str(key))
    assert "FAKE KEY" not in result.stderr


@pytest.mark.parametrize("launch", ["fork-server", "no-daemon"])
def test_a_sandbox_the_engine_cannot_read_is_refused_by_the_worker(runner, source, udfs, launch):
    """hidden = quiver.udf(sandbox=True)(f): not a decorator, so not read before the run."""
    out = source.parent / "out.parquet"
    extra = ["--no-daemon"] if launch == "no-daemon" else []
    result = runner("run", source, *extra, "--udf", f"h={udfs}:hidden(name)", "-o", out)
    assert_failed(result, out, "'h'", "not sandboxed", "refused rather than run unsandboxed")


def test_a_sandbox_that_is_not_a_literal_is_refused_before_the_run(runner, source, tmp_path):
    path = tmp_path / "computed.py"
    path.write_text(
        "import pyarrow as pa\nimport quiver\nPATHS = ['data']\n\n"
        "@quiver.udf(returns='string', sandbox=PATHS)\n"
        "def f(name: pa.Array) -> pa.Array:\n    return name\n"
    )
    out = source.parent / "out.parquet"
    result = runner("run", source, "--udf", f"f={path}:f(name)", "-o", out)
    assert_failed(result, out, f"{path}:5", "sandbox= of UDF f must be True, False or a literal")


# ---- quiver.Session ----


def test_session_sandboxes_the_declared_udf_only(home, udfs, monkeypatch):
    monkeypatch.syspath_prepend(str(udfs.parent))
    import mixed

    table = pa.table({"name": ["ada", "bob"]})
    with quiver.Session(workers=1, environment={"HOME": str(home)}) as s:
        calls = [
            quiver.call(mixed.plain, "name"),  # by reference, module:qualname
            quiver.call(mixed.boxed, "name"),
            quiver.call(f"{udfs}:boxed_lookup", "name"),  # "file.py:function"
        ]
        out = s.map(table, udfs=calls).read_all()
        assert set(out["plain"].to_pylist()) == {UNSANDBOXED}
        assert set(out["boxed"].to_pylist()) == {SANDBOXED}
        assert set(out["boxed_lookup"].to_pylist()) == {"looked up"}
        with pytest.raises(quiver.UdfError, match="network rule") as error:
            s.map(
                table,
                udfs=[quiver.call(mixed.plain, "name"), quiver.call(mixed.boxed_connect, "name")],
            ).read_all()
        assert error.value.udf_name == "boxed_connect"
        with pytest.raises(quiver.UdfError, match="file system rule") as error:
            s.map(table, udfs=[quiver.call(f"{udfs}:boxed_key", "name")]).read_all()
        assert "FAKE KEY" not in str(error.value)
    sys.modules.pop("mixed", None)


def test_session_sandboxes_a_declared_udf_sent_by_value(home):
    """A UDF defined here (sent by cloudpickle) with sandbox=True."""
    import os
    import socket

    @quiver.udf(returns="string", sandbox=True)
    def local_probe(name: pa.Array) -> pa.Array:
        try:
            socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
            reach = "socket"
        except PermissionError:
            reach = "no socket"
        return pa.array([f"{reach},{os.path.basename(os.environ['TMPDIR'])}"] * len(name))

    table = pa.table({"name": ["ada"]})
    with quiver.Session(workers=1) as s:
        (value,) = s.map(table, udfs=[quiver.call(local_probe, "name")]).read_all()[1].to_pylist()
    reach, tmpdir = value.split(",")
    assert reach == "no socket" and tmpdir.startswith("quiver-sandbox-")


# ---- requirements environments ----


@pytest.fixture(scope="module")
def offline_envs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("envs")
    wheels = base / "wheels"
    wheels.mkdir()
    wheelhouse.make_wheel(wheels, "quiverdemo", "1.0")
    return wheelhouse.offline_environment(wheels, base / "cache")


ENV_UDFS = """
import os
import socket

import pyarrow as pa
import quiverdemo

import quiver


def _probe() -> str:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
        reach = "socket"
    except PermissionError:
        reach = "no socket"
    return f"{quiverdemo.VERSION},{reach}"


@quiver.udf(returns="string", requirements=["quiverdemo==1.0"])
def in_env(name: pa.Array) -> pa.Array:
    return pa.array([_probe()] * len(name))


@quiver.udf(returns="string", requirements=["quiverdemo==1.0"], sandbox=True)
def in_env_boxed(name: pa.Array) -> pa.Array:
    return pa.array([_probe()] * len(name))
"""


@pytest.fixture
def env_udfs(tmp_path: Path) -> Path:
    path = tmp_path / "envudfs" / "env_udfs.py"
    path.parent.mkdir()
    path.write_text(textwrap.dedent(ENV_UDFS))
    return path


def test_requirements_environments_run_sandboxed(quiver, source, env_udfs, offline_envs):
    """--sandbox over a requirements environment's workers, and a UDF that declares both."""
    quiver.env.update(offline_envs)
    out = source.parent / "out.parquet"
    result = quiver(
        "run", source, "--sandbox", "--udf", f"e={env_udfs}:in_env(name)", "-o", out,
        timeout=300,
    )  # fmt: skip
    assert_ok(result)
    assert set(pq.read_table(out)["e"].to_pylist()) == {"1.0,no socket"}
    result = quiver(
        "run", source, "--udf", f"e={env_udfs}:in_env(name)",
        "--udf", f"b={env_udfs}:in_env_boxed(name)", "-o", out, timeout=300,
    )  # fmt: skip
    assert_ok(result)
    table = pq.read_table(out)
    assert set(table["e"].to_pylist()) == {"1.0,socket"}
    assert set(table["b"].to_pylist()) == {"1.0,no socket"}


def test_session_requirements_environment_runs_sandboxed(env_udfs, offline_envs, monkeypatch):
    for key, value in offline_envs.items():
        monkeypatch.setenv(key, value)
    table = pa.table({"name": ["ada"]})
    with quiver.Session(workers=1) as s:
        out = s.map(
            table,
            udfs=[
                quiver.call(f"{env_udfs}:in_env", "name"),
                quiver.call(f"{env_udfs}:in_env_boxed", "name"),
            ],
        ).read_all()
    assert out["in_env"].to_pylist() == ["1.0,socket"]
    assert out["in_env_boxed"].to_pylist() == ["1.0,no socket"]


# ---- the declaration ----


def test_the_declaration_is_checked_and_shown():
    def f(name: pa.Array) -> pa.Array:
        return name

    with pytest.raises(TypeError, match="sandbox= takes True, False or a list of paths"):
        quiver.udf(returns="string", sandbox="data")
    with pytest.raises(TypeError, match="without ':'"):
        quiver.udf(returns="string", sandbox=["a:b"])
    boxed = quiver.udf(returns="string", sandbox=True)(f)
    assert "sandbox=True" in repr(boxed)
    assert boxed.with_policy(on_error="null").sandbox == ()
    assert quiver.udf(returns="string")(f).sandbox is None
    here = Path(__file__).parent
    paths = quiver.udf(returns="string", sandbox=["data", "/srv/models"])(f).sandbox
    assert paths == (str(here / "data"), "/srv/models")  # relative to the defining file
