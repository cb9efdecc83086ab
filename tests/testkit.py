"""Helpers the test modules share: a private database for one service, and a platform of
service processes. Each creates what it needs and removes it afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import asyncpg
from devstack.broker import free_port
from devstack.database import drop_database, fresh_database
from devstack.platform import SERVICES, Platform, start_platform

from mutualaid.runtime import db


@dataclass(frozen=True)
class ServiceDatabase:
    url: str
    pool: asyncpg.Pool


@asynccontextmanager
async def service_database(service: str, *, max_size: int = 4
                           ) -> AsyncIterator[ServiceDatabase]:
    """A migrated database of its own for one service: its schema name is fixed, so tests of
    the same service must not share one."""
    url = fresh_database(f"test_{service}_{uuid.uuid4().hex[:10]}")
    pool = await db.create_pool(url, min_size=1, max_size=max_size)
    try:
        await db.migrate(pool, service, files(service) / "migrations")
        yield ServiceDatabase(url, pool)
    finally:
        await pool.close()
        drop_database(url)


@contextmanager
def running_platform(bootstrap: str, log_dir: Path, *, services: tuple[str, ...] = SERVICES,
                     extra_env: dict[str, str] | None = None) -> Iterator[Platform]:
    """The services as separate processes on a fresh database, stopped and dropped after."""
    url = fresh_database(f"e2e_{uuid.uuid4().hex[:10]}")
    try:
        platform = start_platform(bootstrap=bootstrap, database_url=url,
                                  ports={s: free_port() for s in services}, log_dir=log_dir,
                                  services=services, extra_env=extra_env)
        try:
            yield platform
        finally:
            platform.stop()
    finally:
        drop_database(url)
