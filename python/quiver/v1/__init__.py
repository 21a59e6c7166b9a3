"""Generated protocol buffer code of quiver.v1 (quiver_pb2.py, made by scripts/setup.sh)."""
