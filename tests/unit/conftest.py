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


# -- the store on both engines (callflow/store/db.py): SQLite, and a real PostgreSQL started here --------
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from postgres_server import PostgresServer  # noqa: E402


@pytest.fixture(scope="session")
def postgres_server():
    """One throw-away PostgreSQL cluster per pytest worker (initdb in a temp folder, a unix socket)."""
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """Where the store lives, once per engine: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "var" / "callflow.db")
    return request.getfixturevalue("postgres_server").new_database()
