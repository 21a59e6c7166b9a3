"""The UDF bodies every peer of the end-to-end benchmark runs (bench/run.py).

quiver calls them through `quiver run --udf`; Spark wraps their functions in `pandas_udf`;
DuckDB, Polars and Daft call them on each batch converted to pandas, as the others do.
"""

from __future__ import annotations

import re
import unicodedata

import pandas as pd

import quiver


@quiver.udf(returns="string")
def identity(data: pd.Series) -> pd.Series:
    """Return the strings unchanged ("string identity")."""
    return data


@quiver.udf(returns="string")
def concat(name: pd.Series, data: pd.Series) -> pd.Series:
    """Return `name + data` ("string concat")."""
    return name + data


_SEPARATORS = re.compile(r"[\s\-_]+")
_NOT_WORD = re.compile(r"[^0-9a-z ]")


def normalize_text(text: str) -> str:
    """Return `text` folded for matching: NFKD, accents dropped, lower case, one space
    between words. Pure Python, per string: it costs CPU and holds the GIL."""
    decomposed = unicodedata.normalize("NFKD", text)
    letters = "".join(c for c in decomposed if not unicodedata.combining(c))
    spaced = _SEPARATORS.sub(" ", letters.casefold())
    return _NOT_WORD.sub("", spaced).strip()


@quiver.udf(returns="string")
def normalize(data: pd.Series) -> pd.Series:
    """Normalise every string in Python, one row at a time ("string normalise")."""
    return pd.Series([normalize_text(text) for text in data], index=data.index, dtype=object)
