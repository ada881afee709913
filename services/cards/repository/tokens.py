from __future__ import annotations

import uuid

import asyncpg

from shared.db import DbConnection


async def insert(
    conn: DbConnection,
    *,
    token_id: uuid.UUID,
    token_hash: str,
    label: str,
    role: str,
    organisation_id: uuid.UUID | None,
    provider_id: uuid.UUID | None,
    created_by: str,
) -> None:
    await conn.execute(
        "INSERT INTO api_tokens (token_id, token_hash, label, role, organisation_id,"
        " provider_id, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        token_id,
        token_hash,
        label,
        role,
        organisation_id,
        provider_id,
        created_by,
    )


async def find_live(conn: DbConnection, token_hash: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT token_id, label, role, organisation_id, provider_id FROM api_tokens"
        " WHERE token_hash = $1 AND revoked_at IS NULL",
        token_hash,
    )


async def revoke(conn: DbConnection, token_id: uuid.UUID) -> bool:
    done = await conn.fetchval(
        "UPDATE api_tokens SET revoked_at = now() WHERE token_id = $1 AND revoked_at IS NULL"
        " RETURNING 1",
        token_id,
    )
    return done is not None
