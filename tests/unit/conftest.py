"""Unit tests share one process: each test starts with no call state left by another."""

import pytest

from callflow.core.call import REGISTRY


@pytest.fixture(autouse=True)
def _fresh_call_registry():
    REGISTRY.calls.clear()
    REGISTRY.sinks.clear()
    yield
    REGISTRY.calls.clear()
    REGISTRY.sinks.clear()
