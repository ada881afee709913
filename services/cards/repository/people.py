from __future__ import annotations

import uuid

import asyncpg

from shared import topics
from shared.db import DbConnection

_COLUMNS = (
    "person_id, referrer_org_id, data_key, sealed_data, sub_municipality, resident, channel,"
    " language, erased_at, created_at"
)


async def insert(
    conn: DbConnection,
    *,
    person_id: uuid.UUID,
    referrer_org_id: uuid.UUID,
    data_key: bytes,
    sealed_data: bytes,
    national_number_hash: str,
    sub_municipality: str | None,
    resident: bool,
    channel: str,
    language: str,
) -> None:
    """Raises UniqueViolationError when the national number is already registered."""
    await conn.execute(
        "INSERT INTO people (person_id, referrer_org_id, data_key, sealed_data,"
        " national_number_hash, sub_municipality, resident, channel, language)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        person_id,
        referrer_org_id,
        data_key,
        sealed_data,
        national_number_hash,
        sub_municipality,
        resident,
        channel,
        language,
    )


async def get(
    conn: DbConnection, person_id: uuid.UUID, *, for_update: bool = False
) -> asyncpg.Record | None:
    # FOR UPDATE serialises concurrent changes to one person (issue, replace, erase).
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM people WHERE person_id = $1{lock}",  # noqa: S608
        person_id,
    )


async def update(
    conn: DbConnection,
    person_id: uuid.UUID,
    *,
    sealed_data: bytes,
    sub_municipality: str | None,
    channel: str,
    language: str,
) -> None:
    await conn.execute(
        "UPDATE people SET sealed_data = $2, sub_municipality = $3, channel = $4, language = $5"
        " WHERE person_id = $1",
        person_id,
        sealed_data,
        sub_municipality,
        channel,
        language,
    )


async def shred(conn: DbConnection, person_id: uuid.UUID) -> None:
    """Crypto-shredding: the key goes, and with it every way to read or find the person.
    The ciphertext stays, unreadable; the opaque id stays for the ledger and events."""
    await conn.execute(
        "UPDATE people SET data_key = NULL, national_number_hash = NULL, erased_at = now()"
        " WHERE person_id = $1",
        person_id,
    )


async def withdraw_unpublished_details(conn: DbConnection, person_id: uuid.UUID) -> int:
    """Deletes the person's HolderDetailsChanged events still waiting in the outbox (the
    broker away, or parked by the relay): sealed for finance and notifications, they hold
    the name, bank account and contact details, and must not reach anyone after erasure.
    A row the relay is publishing right now is locked: this waits, then finds it gone."""
    deleted = await conn.fetchval(
        "WITH gone AS (DELETE FROM outbox WHERE topic = $1 AND key = $2"
        " AND published_at IS NULL RETURNING 1) SELECT count(*) FROM gone",
        topics.HOLDER_DETAILS_CHANGED.name,
        str(person_id).encode(),
    )
    return int(deleted)
