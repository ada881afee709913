from __future__ import annotations

import uuid
from datetime import date

import asyncpg

from shared.db import DbConnection


# The last day a card is valid under a grant, then the later end date (whose announcement
# is due first), then the newer decision.
def _reach(alias: str) -> str:
    return (
        f"{alias}eligible_until + {alias}grace_days DESC, {alias}eligible_until DESC,"
        f" {alias}created_at DESC"
    )


_COLUMNS = (
    "eligibility_id, person_id, target_group, eligible_from, eligible_until, grace_days,"
    " evidence_ref, granted_by, created_at, extended_at"
)


async def insert(
    conn: DbConnection,
    *,
    eligibility_id: uuid.UUID,
    person_id: uuid.UUID,
    target_group: str,
    eligible_from: date,
    eligible_until: date,
    grace_days: int,
    evidence_ref: str | None,
    granted_by: uuid.UUID,
) -> None:
    await conn.execute(
        "INSERT INTO eligibilities (eligibility_id, person_id, target_group, eligible_from,"
        " eligible_until, grace_days, evidence_ref, granted_by)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        eligibility_id,
        person_id,
        target_group,
        eligible_from,
        eligible_until,
        grace_days,
        evidence_ref,
        granted_by,
    )


async def current(conn: DbConnection, person_id: uuid.UUID) -> asyncpg.Record | None:
    """The grant that reaches furthest, grace included: the one a card is valid under (a
    grant ending later with fewer grace days may leave the card valid for less time)."""
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM eligibilities WHERE person_id = $1"  # noqa: S608
        f" ORDER BY {_reach('')} LIMIT 1",
        person_id,
    )


async def get(conn: DbConnection, eligibility_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM eligibilities WHERE eligibility_id = $1 FOR UPDATE",  # noqa: S608
        eligibility_id,
    )


async def of_person(conn: DbConnection, person_id: uuid.UUID) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            f"SELECT {_COLUMNS} FROM eligibilities WHERE person_id = $1"  # noqa: S608
            " ORDER BY eligible_from",
            person_id,
        )
    )


async def forget_evidence(conn: DbConnection, person_id: uuid.UUID) -> None:
    """Blanks the evidence references typed for a person's grants (a file name, a case
    number, sometimes a name); the periods stay, for the reports."""
    await conn.execute(
        "UPDATE eligibilities SET evidence_ref = NULL WHERE person_id = $1", person_id
    )


async def extend(conn: DbConnection, eligibility_id: uuid.UUID, eligible_until: date) -> None:
    await conn.execute(
        "UPDATE eligibilities SET eligible_until = $2, extended_at = now()"
        " WHERE eligibility_id = $1",
        eligibility_id,
        eligible_until,
    )


_LATEST = (
    "SELECT DISTINCT ON (e.person_id) e.eligibility_id, e.person_id, e.target_group,"  # noqa: S608
    " e.eligible_from, e.eligible_until, e.grace_days, p.referrer_org_id"
    " FROM eligibilities e JOIN people p USING (person_id)"
    " WHERE p.erased_at IS NULL"
    f" ORDER BY e.person_id, {_reach('e.')}"
)


async def ending_unannounced(
    conn: DbConnection, today: date, horizon: date
) -> list[asyncpg.Record]:
    """Current grants of people still on the books that end in [today, horizon] and were
    not announced for that end date yet (an extension moves the date: announced again)."""
    return list(
        await conn.fetch(
            f"""
            WITH latest AS ({_LATEST})
            SELECT l.* FROM latest l
            WHERE l.eligible_until BETWEEN $1 AND $2
              AND NOT EXISTS (SELECT 1 FROM ending_announcements a
                              WHERE a.eligibility_id = l.eligibility_id
                                AND a.eligible_until = l.eligible_until)
            """,  # noqa: S608
            today,
            horizon,
        )
    )


async def live_cards_past_grace(conn: DbConnection, today: date) -> list[asyncpg.Record]:
    """Active or blocked cards whose holder's current grant ended, grace included."""
    return list(
        await conn.fetch(
            f"""
            WITH latest AS ({_LATEST})
            SELECT c.card_id, c.card_number, c.person_id, c.status, l.eligible_until
            FROM cards c JOIN latest l USING (person_id)
            WHERE c.status IN ('active', 'blocked')
              AND l.eligible_until + l.grace_days < $1
            FOR UPDATE OF c SKIP LOCKED
            """,  # noqa: S608
            today,
        )
    )


async def mark_announced(conn: DbConnection, eligibility_id: uuid.UUID, until: date) -> bool:
    """Records the announcement; False when another run recorded it first (a run that read
    the grant as unannounced while that one had not committed yet waits here for it)."""
    inserted = await conn.fetchval(
        "INSERT INTO ending_announcements (eligibility_id, eligible_until) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING RETURNING true",
        eligibility_id,
        until,
    )
    return inserted is not None
