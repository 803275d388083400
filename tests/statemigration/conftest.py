"""State-migration fixtures: a real PostgreSQL server (one per session, a fresh database per test) and
a fresh SQLite path.

Tests that use the ``postgres`` fixture (directly or through ``pg_database``) get the ``postgres``
marker, so ``pytest -m "not postgres"`` runs the rest on a machine without PostgreSQL.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import postgres as pg
from tests.support.statemigration import Pair

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE not in item.path.parents:
            continue
        params = getattr(item, "callspec", None)
        on_postgres = params is not None and "postgres" in params.params.values()
        if on_postgres or "postgres" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres() -> Iterator[pg.PostgresServer]:
    with pg.running() as server:
        yield server


@pytest.fixture
def pg_database(postgres: pg.PostgresServer) -> Iterator[str]:
    """A URL (with the password) for a database of this test's own, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    url = postgres.create_database(name)
    yield url
    postgres.drop_database(name)


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    """A path for a SQLite database file that does not exist yet."""
    return tmp_path / "state.sqlite3"


@pytest.fixture(params=["sqlite", "postgres"])
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Pair]:
    if request.param == "sqlite":
        yield Pair("sqlite", f"sqlite:///{tmp_path / 'flat.db'}", f"sqlite:///{tmp_path / 'hier.db'}")
        return
    server: pg.PostgresServer = request.getfixturevalue("postgres")
    names = [
        f"flat_{os.getpid()}_{random.getrandbits(32):x}",
        f"hier_{os.getpid()}_{random.getrandbits(32):x}",
    ]
    urls = [server.create_database(name) for name in names]
    yield Pair("postgres", *urls)
    for name in names:
        server.drop_database(name)
