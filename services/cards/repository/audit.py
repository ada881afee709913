from __future__ import annotations

import asyncpg

from services.cards.domain.access import Principal
from shared.db import DbConnection


async def record(
    conn: DbConnection,
    principal: Principal,
    *,
    action: str,
    subject_type: str,
    subject_id: str,
    reason: str | None,
    correlation_id: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor_token_id, actor_label, actor_role, actor_org_id, action,"
        " subject_type, subject_id, reason, correlation_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        principal.token_id,
        principal.label,
        principal.role.value,
        principal.organisation_id,
        action,
        subject_type,
        subject_id,
        reason,
        correlation_id,
    )


async def entries(
    conn: DbConnection, *, subject_id: str | None = None, limit: int = 200
) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT audit_id, at, actor_token_id, actor_label, actor_role, actor_org_id, action,"
            " subject_type, subject_id, reason, correlation_id FROM audit_log"
            " WHERE $1::text IS NULL OR subject_id = $1 ORDER BY audit_id DESC LIMIT $2",
            subject_id,
            limit,
        )
    )


async def forget_reasons(conn: DbConnection, subject_ids: list[str]) -> None:
    """Blanks the typed reasons of the entries about these subjects: who did what and when
    stays, for accountability; what a referrer wrote about the person goes."""
    await conn.execute(
        "UPDATE audit_log SET reason = NULL WHERE subject_id = ANY($1::text[])", subject_ids
    )
