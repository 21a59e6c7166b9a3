"""Tiny pure-Python wheels built in a test's own directory: environments install from them
with no network (PIP_NO_INDEX and PIP_FIND_LINKS, or uv's UV_NO_INDEX and UV_FIND_LINKS)."""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path


def make_wheel(directory: Path, name: str, version: str) -> Path:
    """Write ``NAME-VERSION-py3-none-any.whl``: a module ``NAME`` with ``VERSION = version``."""
    dist = f"{name}-{version}"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: quiver-tests\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    path = directory / f"{dist}-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            data = text.encode()
            archive.writestr(member, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            record.append(f"{member},sha256={digest.decode()},{len(data)}")
        record.append(f"{dist}.dist-info/RECORD,,")
        archive.writestr(f"{dist}.dist-info/RECORD", "\n".join(record) + "\n")
    return path


def offline_environment(wheels: Path, env_dir: Path) -> dict[str, str]:
    """Variables that make quiver build environments in ``env_dir`` from ``wheels`` only."""
    return {
        "QUIVER_ENV_DIR": str(env_dir),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
        "UV_NO_INDEX": "1",
        "UV_FIND_LINKS": str(wheels),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


def apply(variables: dict[str, str]) -> dict[str, str | None]:
    """Set ``variables`` in os.environ; return the old values, for :func:`restore`."""
    old = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    return old


def restore(old: dict[str, str | None]) -> None:
    """Undo :func:`apply`."""
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
