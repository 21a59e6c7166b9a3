"""Python ``logging`` inside a UDF, written so that the engine keeps each record's level.

A worker's stdout and stderr reach the engine as one stream of lines. A record goes out as
``LEVEL:LOGGER:MESSAGE`` (Python's own ``logging.BASIC_FORMAT``), one such line per line of
the message, so that a traceback logged with ``logger.exception`` keeps its level on every
line; the engine files any other line as plain output (docs/protocol.md, "Worker output").
"""

from __future__ import annotations

import logging
import sys


class LevelPerLineFormatter(logging.Formatter):
    """Format a record as ``LEVEL:LOGGER:TEXT`` on every line of its text."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        prefix = f"{record.levelname}:{record.name}:"
        return "\n".join(prefix + line for line in text.splitlines() or [""])


def install_udf_logging() -> None:
    """Send the root logger's records to stderr at INFO and above, unless something set it up.

    Without this, Python drops INFO records and writes WARNING ones without their level.
    A UDF module that configures logging itself (``basicConfig`` before the worker's handler
    is there, or handlers of its own) keeps its configuration for its own loggers.
    """
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(LevelPerLineFormatter("%(message)s"))
    root.addHandler(handler)
    if root.level == logging.WARNING:  # Python's default: the UDF did not choose one
        root.setLevel(logging.INFO)
