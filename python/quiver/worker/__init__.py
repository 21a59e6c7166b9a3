"""The Python worker's runtime: ``python -m quiver.worker --id ID --connection ENDPOINT``.

The state machine (:mod:`.state_machine`), one execution (:mod:`.execution`), the ways a UDF is
called (:mod:`.evaluators`), UDF loading (:mod:`.loader`) and the errors (:mod:`.errors`). It
knows no socket: the endpoint's scheme picks a transport from :mod:`quiver.transport`, which
feeds the runtime the engine's messages.
"""
