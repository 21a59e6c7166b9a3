"""Where a gRPC worker listens: ``grpc+unix:PATH`` or ``grpc+tcp:HOST:PORT``."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from quiver.transport.base import EndpointError

GRPC_UNIX_SCHEME = "grpc+unix:"
GRPC_TCP_SCHEME = "grpc+tcp:"
LOOPBACK_HOST = "127.0.0.1"


@dataclass(frozen=True)
class GrpcEndpoint:
    """Name where the worker listens: a Unix socket path or a TCP host and port."""

    unix_path: str | None = None
    host: str = LOOPBACK_HOST
    port: int = 0

    @property
    def address(self) -> str:
        """Return the address grpcio binds: ``unix:/path`` or ``HOST:PORT``."""
        if self.unix_path is not None:
            return f"unix:{self.unix_path}"
        return f"{_bracketed(self.host)}:{self.port}"

    @property
    def is_local(self) -> bool:
        """Tell whether only this machine can reach the endpoint (a Unix socket or loopback)."""
        if self.unix_path is not None or self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name: it may resolve to anything

    def with_port(self, port: int) -> GrpcEndpoint:
        """Return the endpoint with the port the server actually bound (for port 0)."""
        return self if self.unix_path is not None else GrpcEndpoint(None, self.host, port)

    def __str__(self) -> str:
        """Spell the endpoint the way --connection takes it."""
        if self.unix_path is not None:
            return f"{GRPC_UNIX_SCHEME}{self.unix_path}"
        return f"{GRPC_TCP_SCHEME}{_bracketed(self.host)}:{self.port}"


def parse_grpc_endpoint(endpoint: str) -> GrpcEndpoint:
    """Read ``grpc+unix:/path`` or ``grpc+tcp:HOST:PORT`` (an empty HOST means loopback)."""
    if endpoint.startswith(GRPC_UNIX_SCHEME):
        path = endpoint[len(GRPC_UNIX_SCHEME) :]
        if path.startswith("//"):
            path = path[2:]  # also accept the grpc+unix:///path spelling
        if not path:
            raise EndpointError(f"endpoint {endpoint!r} names no socket path")
        return GrpcEndpoint(unix_path=path)
    if endpoint.startswith(GRPC_TCP_SCHEME):
        rest = endpoint[len(GRPC_TCP_SCHEME) :]
        if rest.startswith("//"):
            rest = rest[2:]
        host, sep, port_text = rest.rpartition(":")
        if not sep or not port_text.isdigit() or int(port_text) > 65535:
            raise EndpointError(
                f"endpoint {endpoint!r} has no valid port: write grpc+tcp:HOST:PORT "
                "(grpc+tcp::PORT listens on 127.0.0.1)"
            )
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]  # [::1]
        return GrpcEndpoint(host=host or LOOPBACK_HOST, port=int(port_text))
    raise EndpointError(
        f"unsupported endpoint {endpoint!r}: the grpc transport listens on "
        "grpc+unix:/path/to/socket or grpc+tcp:HOST:PORT"
    )


def _bracketed(host: str) -> str:
    """Put an IPv6 address in brackets, as addresses with a port need."""
    return f"[{host}]" if ":" in host else host
