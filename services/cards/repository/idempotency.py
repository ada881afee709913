from __future__ import annotations

from datetime import timedelta

import asyncpg

from shared.db import DbConnection


async def claim(
    conn: DbConnection, caller: str, key_hash: bytes, request_hash: bytes, retention: timedelta
) -> asyncpg.Record | None:
    """Claims the key for the caller's transaction (None), or returns the row a committed
    request left for it. A claim by a transaction still running makes this insert wait for
    its end: committed, its row is returned; rolled back, the key is claimed here. A row
    older than the retention counts as forgotten and is claimed anew."""
    claimed = await conn.fetchval(
        "INSERT INTO idempotency_keys (caller, key_hash, request_hash) VALUES ($1, $2, $3)"
        " ON CONFLICT (caller, key_hash) DO UPDATE SET request_hash = EXCLUDED.request_hash,"
        " status = NULL, response = NULL, created_at = now()"
        " WHERE idempotency_keys.created_at < now() - $4::interval"
        " RETURNING true",
        caller,
        key_hash,
        request_hash,
        retention,
    )
    if claimed:
        return None
    # The conflicting row is locked by the statement above (ON CONFLICT locks it even when
    # its WHERE is false), so it is still there; a new statement sees it committed.
    return await conn.fetchrow(
        "SELECT request_hash, status, response FROM idempotency_keys"
        " WHERE caller = $1 AND key_hash = $2",
        caller,
        key_hash,
    )


async def answer(
    conn: DbConnection, caller: str, key_hash: bytes, status: int, response: bytes
) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET status = $3, response = $4"
        " WHERE caller = $1 AND key_hash = $2",
        caller,
        key_hash,
        status,
        response,
    )


async def forget_expired(conn: DbConnection, retention: timedelta) -> int:
    deleted = await conn.fetchval(
        "WITH gone AS (DELETE FROM idempotency_keys WHERE created_at < now() - $1::interval"
        " RETURNING 1) SELECT count(*) FROM gone",
        retention,
    )
    return int(deleted)
