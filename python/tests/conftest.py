"""Shared fixtures: an engine harness that starts a real worker process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from engine_harness import EngineHarness


def _started_engine() -> Iterator[EngineHarness]:
    """Yield an engine whose worker has connected and said Hello; stop both afterwards."""
    harness = EngineHarness()
    try:
        harness.start()
        yield harness
    finally:
        harness.close()


@pytest.fixture
def engine() -> Iterator[EngineHarness]:
    """Yield an engine with a fresh worker of its own."""
    yield from _started_engine()


@pytest.fixture(scope="module")
def shared_engine() -> Iterator[EngineHarness]:
    """Yield an engine whose worker serves several tests; each must leave it idle."""
    yield from _started_engine()
