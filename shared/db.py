"""asyncpg pools and a forward-only SQL migration runner.

Migrations are plain `NNNN_name.sql` files per service, applied in order, each in its own
transaction, recorded in `schema_migrations`. An advisory lock lets several processes of
one service start together without applying a file twice.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.logging import get_logger

# A string alias: asyncpg's classes are generic only in its stubs, not at run time.
DbConnection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
"""A connection, whether held directly or borrowed from a pool."""

log = get_logger(__name__)
_MIGRATION_LOCK = 7_227_001


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 5) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        command_timeout=60,
        # Prepared statements are cached per connection: the hot path's queries are
        # parsed once per connection, not once per message.
        statement_cache_size=256,
        # ...but planned at every execution, for the batch at hand. After a few executions
        # PostgreSQL may switch a prepared statement to a generic plan, chosen for the
        # batches it has seen: after a quiet spell of one-check-in batches, the claims
        # service's read of a batch's facts kept a plan that cost 77 µs per check-in at
        # batches of 1,000 instead of ~19 (a backlog, a replay: exactly when it matters).
        # Planning costs well under a millisecond per statement; batches pay it once.
        server_settings={"plan_cache_mode": "force_custom_plan"},
    )
    assert pool is not None
    return pool


async def migrate(conn: DbConnection, directory: Path) -> list[str]:
    """Apply the migration files not applied yet; returns their names."""
    # The lock comes first: two processes of one service starting together would otherwise
    # race on CREATE TABLE IF NOT EXISTS, which is not atomic (found by CI with two claims).
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, sha256 text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        applied: dict[str, str] = {
            r["name"]: r["sha256"]
            for r in await conn.fetch("SELECT name, sha256 FROM schema_migrations")
        }
        done: list[str] = []
        for path, sql in _read_migrations(directory):
            digest = hashlib.sha256(sql.encode()).hexdigest()
            if path.name in applied:
                if applied[path.name] != digest:
                    # Forward-only: an applied file is history and must never change.
                    raise RuntimeError(f"migration {path.name} changed after it was applied")
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (name, sha256) VALUES ($1, $2)",
                    path.name,
                    digest,
                )
            log.info("migration applied", migration=path.name)
            done.append(path.name)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)


def _read_migrations(directory: Path) -> list[tuple[Path, str]]:
    """Small files, read once at start-up before the service serves."""
    return [(path, path.read_text()) for path in sorted(directory.glob("*.sql"))]


SHARED_MIGRATIONS = Path(__file__).parent / "migrations"


async def migrate_service(pool: asyncpg.Pool, service_migrations: Path) -> None:
    """The shared tables (inbox, outbox) first, then the service's own."""
    async with pool.acquire() as conn:
        await migrate(conn, SHARED_MIGRATIONS)
        await migrate(conn, service_migrations)


def records_to_dicts(records: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [dict(r) for r in records]
