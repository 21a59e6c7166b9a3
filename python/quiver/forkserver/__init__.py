"""The per-user fork server: ``python -m quiver.forkserver --socket PATH``.

A long-lived process that has imported pyarrow, pandas and the worker runtime once and forks a
ready worker per request, so that a ``quiver run`` does not pay the interpreter's imports for
every worker. :mod:`.server` accepts requests on a Unix socket in the user's private 0700
directory; :mod:`.child` turns a forked copy into a worker (its UDF modules are imported only
then, so an edited UDF file is always picked up). The request format is in docs/protocol.md
("Fork server").
"""
