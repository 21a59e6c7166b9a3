"""Generate the Python code of Spark's UDF worker protocol (``proto/spark``) into this package.

Run at build time by ``scripts/setup.sh`` (the generated files are git-ignored)::

    python python/quiver/spark_dialect/codegen.py proto/spark python/quiver/spark_dialect/proto

It runs as a plain script, so that it works before ``quiver`` itself imports. protoc writes
``import udf_message_pb2 as ...`` for the files' bare-name imports of each other (Spark's
``.proto`` files import ``common.proto``, not a package path), which only works with the output
folder on ``sys.path``. Each such line is rewritten to ``from . import udf_message_pb2 as ...``,
so the modules import as ``quiver.spark_dialect.proto.udf_message_pb2`` and nothing is added to
``sys.path``. The ``.proto`` files stay vendored unchanged.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

PROTO_FILES = ("common.proto", "udf_message.proto", "udf_service.proto", "worker_spec.proto")
# "import common_pb2 as common__pb2" as protoc (python_out and grpc_python_out) writes it.
_BARE_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)


def generate(proto_dir: Path, out_dir: Path) -> None:
    """Run protoc over Spark's four files into ``out_dir`` and make their imports relative."""
    from grpc_tools import protoc  # a build-time dependency (requirements.txt)

    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{proto_dir}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(proto_dir / name) for name in PROTO_FILES),
    ]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {proto_dir}")
    for path in sorted(out_dir.glob("*_pb2*.py*")):
        text = path.read_text()
        fixed = _BARE_IMPORT.sub(r"from . import \1 as \2", text)
        if fixed != text:
            path.write_text(fixed)


def main(argv: list[str]) -> int:
    """``codegen.py PROTO_DIR OUT_DIR``."""
    if len(argv) != 2:
        print("usage: codegen.py PROTO_DIR OUT_DIR", file=sys.stderr)
        return 2
    generate(Path(argv[0]), Path(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
