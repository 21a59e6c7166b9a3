"""The Python worker of quiver: ``python -m quiver.worker --id ID --connection unix:PATH``.

With ``--transport grpc`` it serves the UdfWorker gRPC service on ``grpc+unix:PATH`` or
``grpc+tcp:HOST:PORT`` instead of connecting to the engine.
"""
