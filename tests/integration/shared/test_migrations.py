"""Migrations: several processes of one service may start at once on an empty database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from shared.db import migrate

pytestmark = pytest.mark.integration


async def test_concurrent_starts_apply_each_migration_once(database: str, tmp_path: Path) -> None:
    (tmp_path / "0001_widgets.sql").write_text("CREATE TABLE widgets (id int PRIMARY KEY);")
    (tmp_path / "0002_more.sql").write_text("ALTER TABLE widgets ADD COLUMN size int;")
    connections = [await asyncpg.connect(database) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c, tmp_path) for c in connections))
        applied = await connections[0].fetchval("SELECT count(*) FROM schema_migrations")
    finally:
        for conn in connections:
            await conn.close()
    assert sorted(name for names in results for name in names) == [
        "0001_widgets.sql",
        "0002_more.sql",
    ]
    assert applied == 2


async def test_a_changed_applied_migration_is_refused(database: str, tmp_path: Path) -> None:
    migration = tmp_path / "0001_widgets.sql"
    migration.write_text("CREATE TABLE widgets (id int PRIMARY KEY);")
    conn = await asyncpg.connect(database)
    try:
        await migrate(conn, tmp_path)
        migration.write_text("CREATE TABLE widgets (id bigint PRIMARY KEY);")
        with pytest.raises(RuntimeError, match="changed after it was applied"):
            await migrate(conn, tmp_path)
    finally:
        await conn.close()
