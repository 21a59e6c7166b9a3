"""quiver in PySpark jobs: quiver UDFs of any language over a Spark DataFrame.

- :func:`map`: one column per UDF beside the kept columns, over ``DataFrame.mapInArrow``;
  each executor's Python process keeps one warm :class:`quiver.Session` across tasks and
  stages.
- :func:`apply`: a grouped map (``@quiver.grouped_map``) over ``df.groupBy(...)``, through
  ``applyInArrow``; :func:`flat_map`: a table function (``@quiver.udtf``).
- :func:`runtime_call`: a UDF of a compiled worker (the C++ or Rust SDK) declared in
  ``runtimes={...}``.

PySpark is an optional dependency: ``pip install 'quiver[spark]'``. See docs/spark.md.
"""

from quiver.spark.grouped import apply, flat_map
from quiver.spark.mapping import RuntimeCall, map, runtime_call

__all__ = ["RuntimeCall", "apply", "flat_map", "map", "runtime_call"]
