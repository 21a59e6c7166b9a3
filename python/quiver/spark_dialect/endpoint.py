"""What ``--connection`` names in Spark's dialect (docs/spark-protocol.md, section 1).

Spark's ``DirectWorker`` passes a bare TCP port (served on loopback, IPv4 and IPv6) or the path
of a Unix socket. quiver's own spellings, ``grpc+unix:PATH`` and ``grpc+tcp:HOST:PORT``, are
taken too, so the same engine code starts workers of either dialect.
"""

from __future__ import annotations

import socket

from quiver.transport.base import EndpointError
from quiver.transport.grpc.endpoint import (
    GRPC_TCP_SCHEME,
    GRPC_UNIX_SCHEME,
    GrpcEndpoint,
    parse_grpc_endpoint,
)

IPV4_LOOPBACK = "127.0.0.1"
IPV6_LOOPBACK = "::1"


def parse_connection(connection: str) -> list[GrpcEndpoint]:
    """Return the endpoints to serve: one, or both loopbacks for a bare port."""
    if not connection:
        raise EndpointError("--connection is empty: give a TCP port or a Unix socket path")
    if connection.isdigit():
        port = int(connection)
        if not 0 < port <= 65535:
            raise EndpointError(f"--connection {connection}: a TCP port is 1 to 65535")
        hosts = [IPV4_LOOPBACK] + ([IPV6_LOOPBACK] if has_ipv6_loopback() else [])
        return [GrpcEndpoint(host=host, port=port) for host in hosts]
    if connection.startswith((GRPC_UNIX_SCHEME, GRPC_TCP_SCHEME)):
        return [parse_grpc_endpoint(connection)]
    return [GrpcEndpoint(unix_path=connection)]


def has_ipv6_loopback() -> bool:
    """Tell whether this machine can bind ``[::1]`` (containers often have no IPv6)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind((IPV6_LOOPBACK, 0))
    except OSError:
        return False
    return True
