"""The grouped-map body of bench/grouped.py: quiver runs it with --apply, PySpark with
applyInPandas; both call the same pandas function on every group."""

from __future__ import annotations

import pandas as pd

import quiver


def center_body(group: pd.DataFrame) -> pd.DataFrame:
    """Subtract the group's mean from x (every row of the group comes back)."""
    return group.assign(x=group["x"] - group["x"].mean())


center = quiver.grouped_map(returns="k int64, x double")(center_body)
