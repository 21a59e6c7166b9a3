"""An example UDF with its own Python environment (docs/environments.md).

The package it needs is not installed where quiver runs: quiver builds a virtual environment
with it the first time (cached afterwards) and runs this UDF's workers there.

    quiver run examples/data/people.parquet \\
        --udf 'plain=examples/env_udfs.py:ascii_city(city)' -o examples/data/people_ascii.parquet
"""

import pyarrow as pa
from text_unidecode import unidecode  # only in the UDF's environment

import quiver


@quiver.udf(returns="string", requirements=["text-unidecode==1.3"])
def ascii_city(city: pa.Array) -> pa.Array:
    """Transliterate a city name to ASCII ("Zürich" -> "Zurich")."""
    return pa.array([None if c is None else unidecode(c) for c in city.to_pylist()], pa.string())
