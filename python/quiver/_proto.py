"""Import the generated quiver.v1 protocol buffer module, or explain how to generate it."""

try:
    from quiver.v1 import quiver_pb2 as pb
except ImportError as exc:  # pragma: no cover - depends on the checkout's setup state
    raise ImportError(
        "quiver's generated protocol code (quiver/v1/quiver_pb2.py) is missing or does not "
        f"import ({exc}). Generate it by running `bash scripts/setup.sh` from the repository "
        "root."
    ) from exc

__all__ = ["pb"]
