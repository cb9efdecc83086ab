"""Shared fixtures: a private database per test session on the real Postgres, and a private
Kafka-protocol broker on a free port. Both are created here and removed at the end."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "deploy" / "dev"))  # the project's own infrastructure scripts
sys.path.insert(0, str(REPO / "tests"))  # testkit

from devstack.broker import free_port, start_broker  # noqa: E402
from devstack.database import drop_database, fresh_database  # noqa: E402


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    url = fresh_database(f"test_{uuid.uuid4().hex[:12]}")
    yield url
    drop_database(url)


@pytest.fixture(scope="module")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # One broker per module: modules read topics from the start and run consumer groups
    # of the same names, so a shared broker would let one module see another's events.
    handle = start_broker(free_port(), run_dir=tmp_path_factory.mktemp("broker"))
    yield handle.bootstrap
    handle.stop()


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=8)
    assert pool is not None
    yield pool
    await pool.close()


@pytest.fixture
def schema() -> str:
    """A schema of its own for each test that uses the runtime tables."""
    return f"t_{uuid.uuid4().hex[:10]}"
