"""The failing frame's local variables, added to a UDF's traceback on request.

``quiver run --traceback-locals`` and ``quiver.Session(traceback_locals=True)`` start the workers
with ``QUIVER_TRACEBACK_LOCALS=1``; a UDF error then shows the locals of the innermost frame of
the user's code, each repr cut to ``REPR_LIMIT`` characters, so the row that failed is visible.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from types import TracebackType

ENVIRONMENT_VARIABLE = "QUIVER_TRACEBACK_LOCALS"
# A repr longer than this is cut: a whole batch's column must not flood the error.
REPR_LIMIT = 200
# At most this many locals are shown.
MAX_LOCALS = 40
_LINE_BREAK = re.compile(r"\s*\n\s*")


def requested() -> bool:
    """Tell whether the engine asked for the failing frame's locals."""
    return os.environ.get(ENVIRONMENT_VARIABLE, "") not in ("", "0")


def bounded_repr(value: object) -> str:
    """Return ``repr(value)`` cut to REPR_LIMIT characters; a repr that raises says so."""
    try:
        text = repr(value)
    except Exception as exc:  # a user's __repr__ may raise anything
        return f"<repr failed: {type(exc).__name__}>"
    # A multi-line repr (an Arrow array, a DataFrame) is put on the variable's one line.
    text = _LINE_BREAK.sub(" ", text)
    if len(text) <= REPR_LIMIT:
        return text
    return f"{text[:REPR_LIMIT]}... ({len(text):,} characters)"


def format_failing_locals(exc: BaseException, is_internal: Callable[[str], bool]) -> str:
    """Format the locals of the innermost frame of ``exc``'s traceback outside quiver.

    ``is_internal(filename)`` tells the frames to skip (quiver's own). Returns "" when no frame
    is left.
    """
    frame = None
    tb: TracebackType | None = exc.__traceback__
    while tb is not None:
        if not is_internal(tb.tb_frame.f_code.co_filename):
            frame = tb
        tb = tb.tb_next
    if frame is None:
        return ""
    code = frame.tb_frame.f_code
    names = sorted(frame.tb_frame.f_locals.items())
    lines = [f"Locals of {code.co_name} ({code.co_filename}, line {frame.tb_lineno}):"]
    for name, value in names[:MAX_LOCALS]:
        lines.append(f"    {name} = {bounded_repr(value)}")
    if len(names) > MAX_LOCALS:
        lines.append(f"    ... and {len(names) - MAX_LOCALS} more")
    return "\n".join(lines) + "\n"
