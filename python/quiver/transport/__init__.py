"""The transports of the quiver worker, behind one interface (:mod:`quiver.transport.base`).

``unix:PATH`` is the ``uds`` transport (:mod:`quiver.transport.uds`): the worker connects to the
engine and speaks frames. ``grpc+unix:PATH`` and ``grpc+tcp:HOST:PORT`` are the ``grpc``
transport (:mod:`quiver.transport.grpc`): the worker serves the ``UdfWorker`` service.
``shm:PATH`` is the ``shm`` transport (:mod:`quiver.transport.shm`): uds frames, batches in shared
memory. To add a
transport, write a module with a :class:`~quiver.transport.base.Transport` and add its schemes to
``_REGISTRY`` (or call :func:`register`); the runtime does not change.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable

from quiver.transport.base import EndpointError, Transport

# scheme prefix -> (transport name, how to make it). Imported lazily: grpcio is optional, and a
# usage error should not wait for pyarrow.
_REGISTRY: dict[str, tuple[str, Callable[[], Transport]]] = {}


def register(scheme: str, name: str, factory: Callable[[], Transport]) -> None:
    """Make endpoints that start with ``scheme`` (e.g. ``"unix:"``) use ``factory()``."""
    _REGISTRY[scheme] = (name, factory)


def _lazy(module: str, attribute: str) -> Callable[[], Transport]:
    """Return a factory that imports ``module`` only when the transport is needed."""
    return lambda: getattr(importlib.import_module(module), attribute)()


register("unix:", "uds", _lazy("quiver.transport.uds", "UdsTransport"))
register("grpc+unix:", "grpc", _lazy("quiver.transport.grpc", "GrpcTransport"))
register("grpc+tcp:", "grpc", _lazy("quiver.transport.grpc", "GrpcTransport"))
register("shm:", "shm", _lazy("quiver.transport.shm", "ShmTransport"))


# The shm endpoint an engine offers beside unix:PATH (docs/protocol.md, section 10).
SHM_OFFER_ENV = "QUIVER_SHM_CONNECTION"


def accept_offer(endpoint: str) -> str:
    """Return the endpoint to serve: the shared memory the engine offers beside ``unix:PATH``
    in QUIVER_SHM_CONNECTION, else ``endpoint``. The variable is removed either way: UDFs and
    their children need not see it."""
    offer = os.environ.pop(SHM_OFFER_ENV, "")
    if endpoint.startswith("unix:") and offer.startswith("shm:"):
        return offer
    return endpoint


def transport_name(endpoint: str) -> str:
    """Name the transport an endpoint's scheme selects; raise EndpointError for no scheme."""
    for scheme, (name, _) in _REGISTRY.items():
        if endpoint.startswith(scheme):
            return name
    known = ", ".join(f"{scheme}..." for scheme in _REGISTRY)
    raise EndpointError(f"unsupported endpoint {endpoint!r}: this worker takes {known}")


def transport_for(endpoint: str) -> Transport:
    """Return the transport for ``endpoint`` (may raise ImportError for a missing package)."""
    for scheme, (_, factory) in _REGISTRY.items():
        if endpoint.startswith(scheme):
            return factory()
    transport_name(endpoint)  # raises EndpointError
    raise AssertionError("unreachable")


__all__ = [
    "EndpointError",
    "SHM_OFFER_ENV",
    "Transport",
    "accept_offer",
    "register",
    "transport_for",
    "transport_name",
]
