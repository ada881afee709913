"""What we remember of other services' events: small upserts, safe to apply out of order
(events of different topics arrive in any order) and, via the inbox, never twice."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from enum import Enum

import asyncpg

from services.notifications.messages import local_day
from services.notifications.signals import ClockWatch, KnownDevice, signed_millis
from shared.db import DbConnection
from shared.envelope import Envelope
from shared.events import cards as ev
from shared.events.checkins import DeviceHeartbeat
from shared.events.claims import ClaimApproved, ClaimRejected, ClaimReversed, PayeeKind
from shared.events.payments import PaymentFailed, PaymentRequested, PaymentSettled


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


UNKNOWN_PROVIDER = "de aanbieder"


async def provider_name(conn: DbConnection, provider_id: uuid.UUID) -> str:
    return (await provider_names(conn, [provider_id]))[provider_id]


async def provider_names(
    conn: DbConnection, provider_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, str]:
    wanted = list(set(provider_ids))
    rows = await conn.fetch(
        "SELECT provider_id, name FROM providers WHERE provider_id = ANY($1::uuid[])", wanted
    )
    names = {r["provider_id"]: str(r["name"]) for r in rows if r["name"]}
    return {p: names.get(p, UNKNOWN_PROVIDER) for p in wanted}


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


async def device_registered(conn: DbConnection, e: ev.DeviceRegistered) -> None:
    """The device's key (a rotated one has a higher key_id; an older registration arriving
    late changes nothing) and its provider, which the registration decides. A revocation
    that came first stays: a device is never un-revoked."""
    await conn.execute(
        "INSERT INTO devices (device_id, provider_id, last_seen_at, public_key, key_id)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (device_id) DO UPDATE SET"
        " provider_id = excluded.provider_id, public_key = excluded.public_key,"
        " key_id = excluded.key_id,"
        " last_seen_at = GREATEST(devices.last_seen_at, excluded.last_seen_at)"
        " WHERE devices.key_id IS NULL OR devices.key_id < excluded.key_id",
        e.device_id,
        e.provider_id,
        e.registered_at,
        e.public_key,
        e.key_id,
    )


async def device_revoked(conn: DbConnection, e: ev.DeviceRevoked) -> None:
    await conn.execute(
        "INSERT INTO devices (device_id, provider_id, revoked) VALUES ($1, $2, true)"
        " ON CONFLICT (device_id) DO UPDATE SET revoked = true",
        e.device_id,
        e.provider_id,
    )


async def known_device(conn: DbConnection, device_id: uuid.UUID) -> KnownDevice | None:
    """The device a heartbeat claims to come from, locked until the transaction ends: two
    copies of one heartbeat judged at once (a rebalance) cannot both count."""
    row = await conn.fetchrow(
        "SELECT provider_id, public_key, revoked, reported_at, clock_judged_at,"
        " clock_off_since FROM devices WHERE device_id = $1 FOR UPDATE",
        device_id,
    )
    if row is None:
        return None
    return KnownDevice(
        row["provider_id"],
        row["public_key"],
        row["revoked"],
        row["reported_at"],
        ClockWatch(row["clock_judged_at"], row["clock_off_since"]),
    )


async def heartbeat(
    conn: DbConnection, e: DeviceHeartbeat, received_at: datetime, clock: ClockWatch
) -> None:
    """An authenticated heartbeat: the device was alive when we *received* it. Its own
    clock can be hours off either way (docs/device-protocol.md), so what it says — sent_at
    and clock_offset_ms — is kept for people to read, and sent_at to recognise replays;
    `clock` is what it leaves us believing of that clock (signals.judge_clock)."""
    await conn.execute(
        "UPDATE devices SET last_seen_at = GREATEST(last_seen_at, $2),"
        " reported_at = GREATEST(reported_at, $3), clock_offset_ms = $4,"
        " clock_judged_at = $5, clock_off_since = $6 WHERE device_id = $1",
        e.device_id,
        received_at,
        signed_millis(e.sent_at),
        e.clock_offset_ms,
        clock.judged_at,
        clock.off_since,
    )
    await conn.execute(
        "INSERT INTO device_days (device_id, day) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        e.device_id,
        local_day(received_at),
    )


class Approval(Enum):
    NEW = "new"
    AGAIN = "again"  # recorded before (the inbox stops redeliveries; this is belt and braces)
    OVERTAKEN = "overtaken"  # its reversal arrived first: it counts for nothing


# A batch of decided check-ins in one statement: the cards' last use (the latest per card),
# and the check-ins themselves, an approval marked reversed already if its reversal
# overtook it. Returns the approvals recorded now, with that mark.
_DECIDED = """
WITH used AS (
    UPDATE cards SET last_used_at = u.at
    FROM (SELECT card_id, max(at) AS at FROM unnest($1::uuid[], $2::timestamptz[]) AS t(card_id, at)
          GROUP BY card_id) u
    -- Only where the batch brings a later use: an unchanged row is not rewritten.
    WHERE cards.card_id = u.card_id AND (cards.last_used_at IS NULL OR cards.last_used_at < u.at)
)
INSERT INTO checkins (claim_id, provider_id, holder_id, target_group, approved, price_cents,
                      amount_cents, occurred_at, till_discount, own_share_cents, reversed)
SELECT c.*, c.approved AND EXISTS (SELECT 1 FROM reversed_claims r WHERE r.claim_id = c.claim_id)
FROM unnest($3::uuid[], $4::uuid[], $5::uuid[], $6::text[], $7::boolean[], $8::bigint[],
            $9::bigint[], $10::timestamptz[], $11::boolean[], $12::bigint[])
     AS c(claim_id, provider_id, holder_id, target_group, approved, price_cents, amount_cents,
          occurred_at, till_discount, own_share_cents)
ON CONFLICT (claim_id) DO NOTHING
RETURNING claim_id, approved, reversed
"""


async def checkins_decided(
    conn: DbConnection, decided: Sequence[ClaimApproved | ClaimRejected]
) -> dict[uuid.UUID, Approval]:
    """Record decided check-ins; for each approval, whether it is new, seen before or
    cancelled already."""
    if not decided:
        return {}
    used = [(e.card_id, e.occurred_at) for e in decided if e.card_id is not None]
    rows = [_decided_row(e) for e in decided]
    recorded = await conn.fetch(
        _DECIDED,
        [card for card, _ in used],
        [at for _, at in used],
        *(list(column) for column in zip(*rows, strict=True)),
    )
    now = {r["claim_id"]: Approval.OVERTAKEN if r["reversed"] else Approval.NEW for r in recorded}
    return {
        e.claim_id: now.get(e.claim_id, Approval.AGAIN)
        for e in decided
        if isinstance(e, ClaimApproved)
    }


def _decided_row(e: ClaimApproved | ClaimRejected) -> tuple[object, ...]:
    """A decided check-in's columns; a rejection refunds nothing."""
    approved = isinstance(e, ClaimApproved)
    return (
        e.claim_id,
        e.provider_id,
        e.holder_id,
        e.target_group if isinstance(e, ClaimApproved) else None,
        approved,
        e.price_cents if isinstance(e, ClaimApproved) else 0,
        e.amount_cents if isinstance(e, ClaimApproved) else 0,
        e.occurred_at,
        isinstance(e, ClaimApproved) and e.payee_kind is PayeeKind.PROVIDER,
        e.own_share_cents if isinstance(e, ClaimApproved) else 0,
    )


async def checkin_reversed(conn: DbConnection, e: ClaimReversed) -> None:
    await conn.execute(
        "INSERT INTO reversed_claims (claim_id, reversed_at) VALUES ($1, $2)"
        " ON CONFLICT (claim_id) DO NOTHING",
        e.claim_id,
        e.reversed_at,
    )
    await conn.execute(
        "UPDATE checkins SET reversed = true WHERE claim_id = $1 AND approved AND NOT reversed",
        e.claim_id,
    )


async def was_till_discount(conn: DbConnection, claim_id: uuid.UUID) -> bool:
    """Whether the check-in's discount was given at the till, for a reversal published
    before ClaimReversed named its payee. False when its approval has not reached us (yet):
    that reversal reads as a refund's."""
    return bool(
        await conn.fetchval("SELECT till_discount FROM checkins WHERE claim_id = $1", claim_id)
    )


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


PaymentOutcome = PaymentSettled | PaymentFailed


async def park_payment_outcome(conn: DbConnection, envelope: Envelope, e: PaymentOutcome) -> None:
    """A settlement or failure whose payment request has not reached us (yet)."""
    await conn.execute(
        "INSERT INTO early_payment_outcomes (event_id, payment_id, outcome, envelope, event)"
        " VALUES ($1, $2, $3, $4::jsonb, $5::jsonb) ON CONFLICT (event_id) DO NOTHING",
        envelope.id,
        e.payment_id,
        "settled" if isinstance(e, PaymentSettled) else "failed",
        envelope.model_dump_json(),
        e.model_dump_json(),
    )


async def early_payment_outcomes(
    conn: DbConnection, payment_id: uuid.UUID
) -> list[tuple[Envelope, PaymentOutcome]]:
    """The outcomes parked for this payment, taken out, in the order they were parked."""
    rows = await conn.fetch(
        "DELETE FROM early_payment_outcomes WHERE payment_id = $1"
        " RETURNING outcome, envelope::text AS envelope, event::text AS event, parked_at",
        payment_id,
    )
    kinds: dict[str, type[PaymentOutcome]] = {"settled": PaymentSettled, "failed": PaymentFailed}
    return [
        (
            Envelope.model_validate_json(r["envelope"]),
            kinds[r["outcome"]].model_validate_json(r["event"]),
        )
        for r in sorted(rows, key=lambda r: r["parked_at"])
    ]
