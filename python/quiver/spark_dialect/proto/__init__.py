"""Generated Python code of Spark's UDF worker protocol (``proto/spark``), never committed.

``scripts/setup.sh`` writes ``common_pb2``, ``udf_message_pb2``, ``udf_service_pb2``,
``worker_spec_pb2`` (and ``*_pb2_grpc``) here with ``quiver/spark_dialect/codegen.py``, which
rewrites protoc's bare-name imports between them into relative ones.
"""
