from __future__ import annotations

import uuid

import asyncpg

from shared.db import DbConnection

_COLUMNS = (
    "card_id, card_number, person_id, status, status_reason, status_note, issued_at,"
    " status_changed_at, replaces_card_id"
)


async def insert(
    conn: DbConnection,
    card_id: uuid.UUID,
    card_number: str,
    person_id: uuid.UUID,
    replaces_card_id: uuid.UUID | None,
) -> None:
    """Raises UniqueViolationError on a second active card (or a clashing number)."""
    await conn.execute(
        "INSERT INTO cards (card_id, card_number, person_id, status, replaces_card_id)"
        " VALUES ($1, $2, $3, 'active', $4)",
        card_id,
        card_number,
        person_id,
        replaces_card_id,
    )


async def get(
    conn: DbConnection, card_id: uuid.UUID, *, for_update: bool = False
) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM cards WHERE card_id = $1{lock}",  # noqa: S608
        card_id,
    )


async def of_person(
    conn: DbConnection, person_id: uuid.UUID, *, for_update: bool = False
) -> list[asyncpg.Record]:
    lock = " FOR UPDATE" if for_update else ""
    return list(
        await conn.fetch(
            f"SELECT {_COLUMNS} FROM cards WHERE person_id = $1 ORDER BY issued_at{lock}",  # noqa: S608
            person_id,
        )
    )


async def forget_reasons(conn: DbConnection, person_id: uuid.UUID) -> list[str]:
    """Blanks the typed notes of a person's card changes (they may name the person; the
    reason codes stay); the card ids, for the audit trail's entries about them."""
    rows = await conn.fetch(
        "UPDATE cards SET status_note = NULL WHERE person_id = $1 RETURNING card_id", person_id
    )
    return [str(r["card_id"]) for r in rows]


async def set_status(
    conn: DbConnection, card_id: uuid.UUID, status: str, reason: str, note: str | None
) -> None:
    await conn.execute(
        "UPDATE cards SET status = $2, status_reason = $3, status_note = $4,"
        " status_changed_at = now() WHERE card_id = $1",
        card_id,
        status,
        reason,
        note,
    )


async def usage(conn: DbConnection, card_id: uuid.UUID) -> asyncpg.Record | None:
    """How the card was used (see services/cards/usage.py), None before its first check-in."""
    return await conn.fetchrow(
        "SELECT first_used_at, last_used_at, checkins, approved, refunded_cents"
        " FROM card_usage WHERE card_id = $1",
        card_id,
    )
