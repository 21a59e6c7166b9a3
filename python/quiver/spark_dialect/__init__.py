"""The Python worker in Spark's dialect: ``python -m quiver.worker --dialect spark``.

Apache Spark's language-agnostic UDF worker protocol (``org.apache.spark.udf.worker.UdfWorker``,
vendored in ``proto/spark``) carried over the worker's own machinery: the UDF loader, the
evaluators, the batch codecs and result checks of :mod:`quiver.worker.execution` run unchanged;
this package only translates Spark's messages to and from them, as ``docs/spark-protocol.md``
(the contract every quiver worker and engine follow in this dialect) says.

- :mod:`.endpoint`: what ``--connection`` names (a port, a socket path, quiver's forms);
- :mod:`.codec`: Spark's ``UdfRequest``/``UdfResponse`` bytes, data envelopes without copies;
- :mod:`.init`: Spark's ``Init`` (plus payload chunks) checked and turned into quiver.v1's;
- :mod:`.batches`: the shapes a ``DataRequest`` may take (a stream, several batches, a bare
  record-batch message);
- :mod:`.stream`: one ``Execute`` stream's state machine;
- :mod:`.service`: ``Execute`` and ``Manage``, worker-wide metrics, shutdown;
- :mod:`.server`: grpcio on the endpoint, SIGTERM, exit status.
"""

from __future__ import annotations

DIALECTS = ("quiver", "spark")
