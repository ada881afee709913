from __future__ import annotations

import uuid

import asyncpg

from shared.db import DbConnection


async def insert(
    conn: DbConnection,
    organisation_id: uuid.UUID,
    name: str,
    kind: str,
    contact_email: str | None,
    webhook_url: str | None,
    sub_municipality: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO organisations (organisation_id, name, kind, contact_email, webhook_url,"
        " sub_municipality) VALUES ($1, $2, $3, $4, $5, $6)",
        organisation_id,
        name,
        kind,
        contact_email,
        webhook_url,
        sub_municipality,
    )


async def exists(conn: DbConnection, organisation_id: uuid.UUID) -> bool:
    found = await conn.fetchval(
        "SELECT 1 FROM organisations WHERE organisation_id = $1", organisation_id
    )
    return found is not None


async def all_(conn: DbConnection) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT organisation_id, name, kind, contact_email, sub_municipality"
            " FROM organisations ORDER BY name"
        )
    )
