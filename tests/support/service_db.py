"""A service's database for tests of the delivery machinery: the shared inbox and outbox,
plus one table of the test's own, on the real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from shared.runtime import ServiceRuntime


async def service_pool(database: str, tmp_path: Path, name: str, own_table: str) -> asyncpg.Pool:
    """The pool of a service `name` whose migrations are the shared ones and `own_table`
    (a CREATE TABLE statement). No broker is asked for: only the database is used."""
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_own.sql").write_text(own_table)
    runtime = ServiceRuntime(
        name=name, bootstrap_servers="127.0.0.1:9", database_url=database, migrations=migrations
    )
    return await runtime.open_database()
