"""Decide which Postgres the services and tests use, and make sure database ``mutualaid`` exists.

Order: ``$DATABASE_URL`` as given; else a local server on 127.0.0.1:5432 (CI service
container, developer install); else an embedded server from the ``pgserver`` wheel with
its data in ``<run_dir>/pgdata``, so a bare machine still gets a real Postgres.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import asyncpg

from . import RUN_DIR, run_sync

DB_NAME = "mutualaid"
DEFAULT_PROBE_PORT = 5432
PROBE_TIMEOUT = 2.0


def local_url(port: int, database: str) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{database}"


def _with_database(url: str, database: str) -> str:
    """Swap the database in a pgserver URI (``postgresql://postgres:@/postgres?host=DIR``)."""
    head, _, query = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{database}" + (f"?{query}" if query else "")


async def _create_database(admin_url: str, database: str) -> None:
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            try:
                # Identifiers cannot be bound as parameters; the name is our constant.
                await conn.execute(f'CREATE DATABASE "{database}"')
            except asyncpg.DuplicateDatabaseError:
                pass  # a concurrent `ensure` won the race
    finally:
        await conn.close()


async def _server_answers(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=PROBE_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable": fall back
        if not isinstance(exc, ConnectionRefusedError):
            # Something listens but is unusable (password needed, not Postgres): say why.
            print(f"note: {url} not usable ({exc!r}); using embedded Postgres", file=sys.stderr)
        return False
    await conn.close()
    return True


def embedded_url(run_dir: Path = RUN_DIR, database: str = DB_NAME) -> str:
    """Start (or reuse) the pgserver instance in ``<run_dir>/pgdata``; return its URL."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, root); its fallback is fine.
        warnings.simplefilter("ignore")
        import pgserver  # lazy: heavy, and only needed on machines without Postgres

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # cleanup_mode=None: the server must outlive this CLI process, like the broker does.
    server = pgserver.get_server(run_dir / "pgdata", cleanup_mode=None)
    return _with_database(server.get_uri(), database)


def ensure_database_url(
    probe_port: int | None = None, run_dir: Path = RUN_DIR, database: str = DB_NAME
) -> str:
    """Return a Postgres URL (asyncpg-compatible) whose database exists."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    if probe_port is None:
        probe_port = int(os.environ.get("PG_PROBE_PORT", DEFAULT_PROBE_PORT))
    if run_sync(_server_answers(local_url(probe_port, "postgres"))):
        url = local_url(probe_port, database)
        run_sync(_create_database(local_url(probe_port, "postgres"), database))
        return url
    url = embedded_url(run_dir, database)
    run_sync(_create_database(_with_database(url, "postgres"), database))
    return url


def stop_embedded(run_dir: Path = RUN_DIR) -> bool:
    """Stop the embedded server in ``<run_dir>/pgdata`` if it runs (data is kept)."""
    pgdata = Path(run_dir) / "pgdata"
    if not (pgdata / "postmaster.pid").exists():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver import pg_ctl

    user = "pgserver" if os.geteuid() == 0 else None  # pgserver runs it as this user under root
    pg_ctl(["-w", "stop"], pgdata=pgdata, user=user)
    return True


async def _recreate(admin_url: str, database: str) -> None:
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


async def _drop(admin_url: str, database: str) -> None:
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await conn.close()


def admin_url(url: str) -> str:
    """The same server's ``postgres`` database, for creating and dropping others."""
    return _with_database(url, "postgres")


def fresh_database(database: str, run_dir: Path = RUN_DIR) -> str:
    """An empty database of that name (dropped first if it exists); returns its URL."""
    url = _with_database(ensure_database_url(run_dir=run_dir), database)
    run_sync(_recreate(admin_url(url), database))
    return url


def drop_database(url: str) -> None:
    database = url.partition("?")[0].rsplit("/", 1)[1]
    run_sync(_drop(admin_url(url), database))
