"""The quiver.v1 wire protocol: its version, the uds framing, the gRPC codec (no I/O here).

``PROTOCOL_VERSION`` is the one place the Python side names the version it speaks (docs/protocol.md,
section 6): it goes out in ``Hello`` and is checked in ``Init``.
"""

PROTOCOL_VERSION = 1
