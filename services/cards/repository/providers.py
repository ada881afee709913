from __future__ import annotations

import uuid
from dataclasses import astuple, dataclass

import asyncpg

from shared.db import DbConnection

_COLUMNS = (
    "provider_id, organisation_id, name, sub_municipality, mode, partner, contact_email,"
    " beneficiary_sealed"
)


@dataclass(frozen=True)
class ProviderFields:
    """What registering or changing a provider stores (its id and timestamps aside)."""

    organisation_id: uuid.UUID | None
    name: str
    sub_municipality: str
    mode: str
    partner: bool
    contact_email: str | None
    beneficiary_sealed: str | None

    def values(self) -> tuple[object, ...]:
        return astuple(self)


# The columns in ProviderFields' order, for both statements.
_FIELDS = (
    "organisation_id, name, sub_municipality, mode, partner, contact_email, beneficiary_sealed"
)


async def insert(conn: DbConnection, provider_id: uuid.UUID, fields: ProviderFields) -> None:
    await conn.execute(
        f"INSERT INTO providers (provider_id, {_FIELDS})"  # noqa: S608
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        provider_id,
        *fields.values(),
    )


async def get(
    conn: DbConnection, provider_id: uuid.UUID, *, for_update: bool = False
) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM providers WHERE provider_id = $1{lock}",  # noqa: S608
        provider_id,
    )


async def update(conn: DbConnection, provider_id: uuid.UUID, fields: ProviderFields) -> None:
    await conn.execute(
        f"UPDATE providers SET ({_FIELDS}, updated_at)"  # noqa: S608
        " = ($2, $3, $4, $5, $6, $7, $8, now()) WHERE provider_id = $1",
        provider_id,
        *fields.values(),
    )


async def all_(conn: DbConnection) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT provider_id, organisation_id, name, sub_municipality, mode, partner,"
            " contact_email, beneficiary_sealed IS NOT NULL AS has_bank_account"
            " FROM providers ORDER BY name"
        )
    )


async def upsert_activity(
    conn: DbConnection,
    provider_id: uuid.UUID,
    activity_id: str,
    name: str,
    category: str,
    price_cents: int | None,
    active: bool,
) -> None:
    await conn.execute(
        "INSERT INTO activities (provider_id, activity_id, name, category, price_cents, active)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (provider_id, activity_id) DO UPDATE"
        " SET name = excluded.name, category = excluded.category,"
        " price_cents = excluded.price_cents, active = excluded.active",
        provider_id,
        activity_id,
        name,
        category,
        price_cents,
        active,
    )


async def activities(conn: DbConnection, provider_id: uuid.UUID) -> list[asyncpg.Record]:
    return list(
        await conn.fetch(
            "SELECT activity_id, name, category, price_cents, active FROM activities"
            " WHERE provider_id = $1 ORDER BY activity_id",
            provider_id,
        )
    )
