"""quiver on Ray: UDFs over a Ray cluster, each Ray actor holding a warm quiver.Session.

- :class:`UdfMap`: the callable class for Ray Data's ``Dataset.map_batches``.
- :func:`run_files`: one output file per input file, computed by actors across the
  cluster, committed all at once (what ``quiver run ... --ray ADDRESS`` runs).

Ray is an optional dependency: ``pip install 'quiver[ray]'``. This package imports without
it; only :func:`run_files` (and Ray itself) need it.
"""

from quiver.ray.job import JobSummary, run_files
from quiver.ray.udf_map import UdfMap

__all__ = ["JobSummary", "UdfMap", "run_files"]
