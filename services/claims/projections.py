"""What claims keeps of the cards service's events: cards, their status over time, holders
and their grants, providers and devices. Each event is an upsert, so replaying them
changes nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.claims import parking
from shared import topics
from shared.consumer import Incoming
from shared.db import DbConnection
from shared.deadletter import DeadLetter
from shared.events import cards as ev

TOPICS = (
    topics.CARD_ISSUED,
    topics.CARD_STATUS_CHANGED,
    topics.ELIGIBILITY_CHANGED,
    topics.HOLDER_DETAILS_CHANGED,
    topics.HOLDER_ERASED,
    topics.PROVIDER_REGISTERED,
    topics.DEVICE_REGISTERED,
    topics.DEVICE_REVOKED,
)


async def apply_card_events(conn: DbConnection, batch: list[Incoming[Any]]) -> list[DeadLetter]:
    registered = []
    issued = []
    for incoming in batch:
        await _apply(conn, incoming.payload)
        if isinstance(incoming.payload, ev.ProviderRegistered):
            await _provider_terms(conn, incoming.payload, incoming.envelope.time)
        if isinstance(incoming.payload, ev.DeviceRegistered):
            registered.append(incoming.payload.device_id)
        if isinstance(incoming.payload, ev.CardIssued):
            issued.append(incoming.payload.card_number)
    # The check-ins that came before their device or card, back to be judged: after every
    # other write of the batch, because it takes a lock (parking.py).
    await parking.release(conn, registered, issued)
    return []


async def _provider_terms(conn: DbConnection, e: ev.ProviderRegistered, at: datetime) -> None:
    """The provider's terms from the moment cards registered the change (the event's time:
    the same on every redelivery, so a replay adds nothing)."""
    await conn.execute(
        "INSERT INTO provider_terms (provider_id, effective_at, mode, partner)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        e.provider_id,
        at,
        e.mode.value,
        e.partner,
    )


async def _apply(conn: DbConnection, e: Any) -> None:
    match e:
        case ev.CardIssued():
            await conn.execute(
                """
                INSERT INTO cards (card_id, card_number, holder_id, target_group, eligible_from,
                                   eligible_until, grace_days, resident, sub_municipality, issued_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (card_id) DO NOTHING
                """,
                e.card_id,
                e.card_number,
                e.holder_id,
                e.target_group,
                e.eligible_from,
                e.eligible_until,
                e.grace_days,
                e.resident,
                e.sub_municipality,
                e.issued_at,
            )
            await conn.execute(
                "INSERT INTO holders (holder_id, referrer_org_id) VALUES ($1, $2)"
                " ON CONFLICT (holder_id) DO UPDATE SET referrer_org_id = excluded.referrer_org_id",
                e.holder_id,
                e.referrer_org_id,
            )
        case ev.CardStatusChanged():
            # The reason is a code (CardStatusReason): what the desk typed never travels.
            await conn.execute(
                "INSERT INTO card_status_history (card_id, status, effective_at, reason)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                e.card_id,
                e.status.value,
                e.effective_at,
                e.reason.value,
            )
        case ev.EligibilityChanged():
            await _eligibility_changed(conn, e)
        case ev.HolderDetailsChanged():
            await conn.execute(
                "INSERT INTO holders (holder_id, referrer_org_id, beneficiary_sealed) VALUES ($1, $2, $3)"
                " ON CONFLICT (holder_id) DO UPDATE SET beneficiary_sealed = excluded.beneficiary_sealed,"
                " referrer_org_id = excluded.referrer_org_id",
                e.holder_id,
                e.referrer_org_id,
                e.beneficiary_sealed,
            )
        case ev.HolderErased():
            await conn.execute(
                "UPDATE holders SET beneficiary_sealed = NULL, erased_at = $2 WHERE holder_id = $1",
                e.holder_id,
                e.erased_at,
            )
        case ev.ProviderRegistered():
            await conn.execute(
                """
                INSERT INTO providers (provider_id, name, sub_municipality, mode, partner, beneficiary_sealed)
                VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (provider_id) DO UPDATE SET name = excluded.name,
                    sub_municipality = excluded.sub_municipality, mode = excluded.mode,
                    partner = excluded.partner, beneficiary_sealed = excluded.beneficiary_sealed
                """,
                e.provider_id,
                e.name,
                e.sub_municipality,
                e.mode.value,
                e.partner,
                e.beneficiary_sealed,
            )
        case ev.DeviceRegistered():
            # A rotation: the key it replaces is kept, with the moment it was replaced, for
            # the check-ins sent before (checkins.py). (Both statements see the row as it
            # was; key_id 0 is a revocation that overtook the registration: no key.)
            await conn.execute(
                """
                WITH replaced AS (
                    INSERT INTO device_key_history (device_id, key_id, public_key, superseded_at)
                    SELECT device_id, key_id, public_key, $5 FROM devices
                    WHERE device_id = $1 AND 0 < key_id AND key_id < $4
                    ON CONFLICT DO NOTHING
                )
                INSERT INTO devices (device_id, provider_id, public_key, key_id) VALUES ($1, $2, $3, $4)
                ON CONFLICT (device_id) DO UPDATE SET public_key = excluded.public_key,
                    key_id = excluded.key_id WHERE devices.key_id < excluded.key_id
                """,
                e.device_id,
                e.provider_id,
                e.public_key,
                e.key_id,
                e.registered_at,
            )
        case ev.DeviceRevoked():
            # The revocation may overtake the registration (another topic): then it is kept
            # as a device without a key (key_id 0, below every real one), which the
            # registration fills in and which stays revoked.
            await conn.execute(
                "INSERT INTO devices (device_id, provider_id, public_key, key_id, revoked_at)"
                " VALUES ($1, $2, '', 0, $3)"
                " ON CONFLICT (device_id) DO UPDATE SET revoked_at = excluded.revoked_at"
                " WHERE devices.revoked_at IS NULL",
                e.device_id,
                e.provider_id,
                e.revoked_at,
            )


# Only a change newer than the grants held replaces them. The holder row may not exist
# yet (CardIssued travels on another topic and can come later): then it is made here.
# The upsert locks the row as check-in batches do, so a change waits for a batch that
# judges this holder, and the batch judges all its check-ins by one set of grants.
_NEWER_GRANTS = """
INSERT INTO holders (holder_id, referrer_org_id, grants_changed_at) VALUES ($1, $2, $3)
ON CONFLICT (holder_id) DO UPDATE SET grants_changed_at = excluded.grants_changed_at
WHERE holders.grants_changed_at IS NULL OR holders.grants_changed_at < excluded.grants_changed_at
RETURNING holder_id
"""
# Before its first list, what we know of a holder's grants: those its cards carry.
_GRANTS_OF_CARDS = """
INSERT INTO holder_grants (holder_id, target_group, eligible_from, eligible_until, grace_days)
SELECT holder_id, target_group, eligible_from, eligible_until, grace_days FROM cards
WHERE holder_id = $1 AND NOT EXISTS (SELECT 1 FROM holder_grants WHERE holder_id = $1)
ON CONFLICT DO NOTHING
"""
_ADD_GRANTS = """
INSERT INTO holder_grants (holder_id, target_group, eligible_from, eligible_until, grace_days)
SELECT $1, * FROM unnest($2::text[], $3::date[], $4::date[], $5::int[]) ON CONFLICT DO NOTHING
"""


async def _eligibility_changed(conn: DbConnection, e: ev.EligibilityChanged) -> None:
    if await conn.fetchval(_NEWER_GRANTS, e.holder_id, e.referrer_org_id, e.changed_at) is None:
        return
    grants = e.grants
    if grants:
        await conn.execute("DELETE FROM holder_grants WHERE holder_id = $1", e.holder_id)
    else:
        # A producer from before `grants` names one grant, the one reaching furthest: it
        # joins the grants known, in the place of the one it extends (same group and start).
        grants = (
            ev.EligibilityGrant(
                target_group=e.target_group,
                eligible_from=e.eligible_from,
                eligible_until=e.eligible_until,
                grace_days=e.grace_days,
            ),
        )
        await conn.execute(_GRANTS_OF_CARDS, e.holder_id)
        await conn.execute(
            "DELETE FROM holder_grants"
            " WHERE holder_id = $1 AND target_group = $2 AND eligible_from = $3",
            e.holder_id,
            e.target_group,
            e.eligible_from,
        )
    await conn.execute(
        _ADD_GRANTS,
        e.holder_id,
        [g.target_group for g in grants],
        [g.eligible_from for g in grants],
        [g.eligible_until for g in grants],
        [g.grace_days for g in grants],
    )
