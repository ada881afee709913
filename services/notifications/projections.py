"""What we remember of other services' events: small upserts, safe to apply out of order
(events of different topics arrive in any order) and, via the inbox, never twice."""

from __future__ import annotations

import uuid
from enum import Enum

import asyncpg

from services.notifications.messages import local_day
from shared.db import DbConnection
from shared.events import cards as ev
from shared.events.checkins import DeviceHeartbeat
from shared.events.claims import ClaimApproved, ClaimRejected, ClaimReversed
from shared.events.payments import PaymentRequested


async def organisation(conn: DbConnection, e: ev.OrganisationRegistered) -> None:
    await conn.execute(
        "INSERT INTO organisations (organisation_id, name, kind, contact_email, webhook_url)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organisation_id) DO UPDATE SET"
        " name = excluded.name, kind = excluded.kind, contact_email = excluded.contact_email,"
        " webhook_url = excluded.webhook_url",
        e.organisation_id,
        e.name,
        e.kind.value,
        e.contact_email,
        e.webhook_url,
    )


async def provider(conn: DbConnection, e: ev.ProviderRegistered) -> None:
    await conn.execute(
        "INSERT INTO providers (provider_id, organisation_id, name, contact_email)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (provider_id) DO UPDATE SET"
        " organisation_id = excluded.organisation_id, name = excluded.name,"
        " contact_email = excluded.contact_email",
        e.provider_id,
        e.organisation_id,
        e.name,
        e.contact_email,
    )


async def provider_name(conn: DbConnection, provider_id: uuid.UUID) -> str:
    name = await conn.fetchval("SELECT name FROM providers WHERE provider_id = $1", provider_id)
    return str(name) if name else "de aanbieder"


async def card_issued(conn: DbConnection, e: ev.CardIssued) -> None:
    await conn.execute(
        "INSERT INTO holders (holder_id, referrer_org_id) VALUES ($1, $2)"
        " ON CONFLICT (holder_id) DO UPDATE SET referrer_org_id = excluded.referrer_org_id",
        e.holder_id,
        e.referrer_org_id,
    )
    await conn.execute(
        "INSERT INTO cards (card_id, card_number, holder_id, referrer_org_id, issued_at)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (card_id) DO NOTHING",
        e.card_id,
        e.card_number,
        e.holder_id,
        e.referrer_org_id,
        e.issued_at,
    )
    if e.replaces_card_id is not None:
        await conn.execute(
            "UPDATE cards SET status = 'replaced' WHERE card_id = $1", e.replaces_card_id
        )
    await _eligibility(conn, e.holder_id, e.target_group, e.eligible_until, e.referrer_org_id)


async def card_status(conn: DbConnection, e: ev.CardStatusChanged) -> None:
    await conn.execute("UPDATE cards SET status = $2 WHERE card_id = $1", e.card_id, e.status.value)


async def eligibility(conn: DbConnection, e: ev.EligibilityChanged) -> None:
    await _eligibility(conn, e.holder_id, e.target_group, e.eligible_until, e.referrer_org_id)


async def _eligibility(
    conn: DbConnection, holder_id: uuid.UUID, group: str, until: object, referrer: uuid.UUID
) -> None:
    await conn.execute(
        "INSERT INTO eligibilities (holder_id, target_group, eligible_until, referrer_org_id)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (holder_id, target_group) DO UPDATE SET"
        " eligible_until = excluded.eligible_until, referrer_org_id = excluded.referrer_org_id",
        holder_id,
        group,
        until,
        referrer,
    )


async def holder_details(conn: DbConnection, e: ev.HolderDetailsChanged) -> None:
    await conn.execute(
        "INSERT INTO holders (holder_id, referrer_org_id, channel, language, contact_sealed)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (holder_id) DO UPDATE SET"
        " referrer_org_id = excluded.referrer_org_id, channel = excluded.channel,"
        " language = excluded.language, contact_sealed = excluded.contact_sealed",
        e.holder_id,
        e.referrer_org_id,
        e.channel,
        e.language,
        e.contact_sealed,
    )


async def holder_erased(conn: DbConnection, e: ev.HolderErased) -> None:
    """Forget the person: contact details, and the addresses and texts of their messages.
    What is still waiting is not sent any more."""
    key = f"holder:{e.holder_id}"
    await conn.execute("DELETE FROM holders WHERE holder_id = $1", e.holder_id)
    await conn.execute("DELETE FROM preferences WHERE recipient = $1", key)
    await conn.execute(
        "UPDATE deliveries SET address = '', subject = '', body = '', payload = '{}',"
        " status = CASE WHEN status IN ('pending', 'scheduled') THEN 'skipped' ELSE status END,"
        " last_error = CASE WHEN status IN ('pending', 'scheduled') THEN 'card holder erased'"
        " ELSE last_error END WHERE recipient = $1",
        key,
    )


async def referrer_of(conn: DbConnection, holder_id: uuid.UUID) -> uuid.UUID | None:
    value = await conn.fetchval(
        "SELECT referrer_org_id FROM holders WHERE holder_id = $1", holder_id
    )
    return value if isinstance(value, uuid.UUID) else None


async def card_number_of(conn: DbConnection, holder_id: uuid.UUID) -> str | None:
    value = await conn.fetchval(
        "SELECT card_number FROM cards WHERE holder_id = $1 ORDER BY issued_at DESC LIMIT 1",
        holder_id,
    )
    return str(value) if value else None


async def device(
    conn: DbConnection, e: ev.DeviceRegistered | ev.DeviceRevoked | DeviceHeartbeat
) -> None:
    match e:
        case ev.DeviceRegistered():
            await conn.execute(
                "INSERT INTO devices (device_id, provider_id, last_seen_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (device_id) DO NOTHING",
                e.device_id,
                e.provider_id,
                e.registered_at,
            )
        case ev.DeviceRevoked():
            await conn.execute(
                "INSERT INTO devices (device_id, provider_id, revoked) VALUES ($1, $2, true)"
                " ON CONFLICT (device_id) DO UPDATE SET revoked = true",
                e.device_id,
                e.provider_id,
            )
        case DeviceHeartbeat():
            # Heartbeats are sent in bursts after an outage: keep the latest, not the last.
            await conn.execute(
                "INSERT INTO devices (device_id, provider_id, last_seen_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (device_id) DO UPDATE SET"
                " last_seen_at = GREATEST(devices.last_seen_at, excluded.last_seen_at)",
                e.device_id,
                e.provider_id,
                e.sent_at,
            )
            await conn.execute(
                "INSERT INTO device_days (device_id, day) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                e.device_id,
                local_day(e.sent_at),
            )


async def _used(conn: DbConnection, card_id: uuid.UUID | None, at: object) -> None:
    if card_id is not None:
        await conn.execute(
            "UPDATE cards SET last_used_at = GREATEST(last_used_at, $2) WHERE card_id = $1",
            card_id,
            at,
        )


class Approval(Enum):
    NEW = "new"
    AGAIN = "again"  # recorded before (the inbox stops redeliveries; this is belt and braces)
    OVERTAKEN = "overtaken"  # its reversal arrived first: it counts for nothing


async def checkin_approved(conn: DbConnection, e: ClaimApproved) -> Approval:
    """Record the decided check-in, reversed already if its reversal overtook it."""
    await _used(conn, e.card_id, e.occurred_at)
    overtaken = await conn.fetchval(
        "INSERT INTO checkins (claim_id, provider_id, holder_id, target_group, approved,"
        " price_cents, amount_cents, occurred_at, reversed) VALUES ($1, $2, $3, $4, true, $5,"
        " $6, $7, EXISTS (SELECT 1 FROM reversed_claims WHERE claim_id = $1))"
        " ON CONFLICT (claim_id) DO NOTHING RETURNING reversed",
        e.claim_id,
        e.provider_id,
        e.holder_id,
        e.target_group,
        e.price_cents,
        e.amount_cents,
        e.occurred_at,
    )
    if overtaken is None:
        return Approval.AGAIN
    return Approval.OVERTAKEN if overtaken else Approval.NEW


async def checkin_rejected(conn: DbConnection, e: ClaimRejected) -> None:
    await _used(conn, e.card_id, e.occurred_at)
    await conn.execute(
        "INSERT INTO checkins (claim_id, provider_id, holder_id, approved, occurred_at)"
        " VALUES ($1, $2, $3, false, $4) ON CONFLICT (claim_id) DO NOTHING",
        e.claim_id,
        e.provider_id,
        e.holder_id,
        e.occurred_at,
    )


async def checkin_reversed(conn: DbConnection, e: ClaimReversed) -> None:
    await conn.execute(
        "INSERT INTO reversed_claims (claim_id, reversed_at) VALUES ($1, $2)"
        " ON CONFLICT (claim_id) DO NOTHING",
        e.claim_id,
        e.reversed_at,
    )
    row = await conn.fetchrow(
        "UPDATE checkins SET reversed = true WHERE claim_id = $1 AND approved AND NOT reversed"
        " RETURNING target_group, occurred_at",
        e.claim_id,
    )
    if row is not None and row["target_group"]:
        await spend(conn, row["target_group"], local_day(row["occurred_at"]).year, -e.amount_cents)


async def spend(conn: DbConnection, line: str, year: int, amount_cents: int) -> tuple[int, int]:
    """Add to a budget line's spending; (before, after). The row lock orders concurrent
    batches, so each threshold is crossed by exactly one claim."""
    after = await conn.fetchval(
        "INSERT INTO budget_spend (budget_line, year, spent_cents) VALUES ($1, $2, $3)"
        " ON CONFLICT (budget_line, year) DO UPDATE SET"
        " spent_cents = budget_spend.spent_cents + excluded.spent_cents RETURNING spent_cents",
        line,
        year,
        amount_cents,
    )
    return int(after) - amount_cents, int(after)


async def payment(conn: DbConnection, e: PaymentRequested) -> None:
    await conn.execute(
        "INSERT INTO payments (payment_id, run_id, payee_kind, payee_id, amount_cents,"
        " structured_reference) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        e.payment_id,
        e.run_id,
        e.payee_kind.value,
        e.payee_id,
        e.amount_cents,
        e.structured_reference,
    )


async def payment_of(conn: DbConnection, payment_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT payee_kind, payee_id, structured_reference FROM payments WHERE payment_id = $1",
        payment_id,
    )
