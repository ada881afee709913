from __future__ import annotations

import uuid

import asyncpg

from shared.db import DbConnection


async def insert(
    conn: DbConnection, device_id: uuid.UUID, provider_id: uuid.UUID, public_key: str
) -> None:
    await conn.execute(
        "INSERT INTO devices (device_id, provider_id, public_key) VALUES ($1, $2, $3)",
        device_id,
        provider_id,
        public_key,
    )


async def get(conn: DbConnection, device_id: uuid.UUID) -> asyncpg.Record | None:
    # Locked: two rotations at once must not hand out the same key id.
    return await conn.fetchrow(
        "SELECT device_id, provider_id, public_key, key_id, revoked_at, revoke_reason,"
        " revoke_note FROM devices WHERE device_id = $1 FOR UPDATE",
        device_id,
    )


async def rotate(conn: DbConnection, device_id: uuid.UUID, public_key: str) -> int:
    key_id: int = await conn.fetchval(
        "UPDATE devices SET public_key = $2, key_id = key_id + 1 WHERE device_id = $1"
        " RETURNING key_id",
        device_id,
        public_key,
    )
    return key_id


async def revoke(conn: DbConnection, device_id: uuid.UUID, reason: str, note: str | None) -> None:
    await conn.execute(
        "UPDATE devices SET revoked_at = now(), revoke_reason = $2, revoke_note = $3"
        " WHERE device_id = $1",
        device_id,
        reason,
        note,
    )


async def of_provider(conn: DbConnection, provider_id: uuid.UUID) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT device_id, key_id, revoked_at, created_at FROM devices"
            " WHERE provider_id = $1 ORDER BY created_at",
            provider_id,
        )
    )
