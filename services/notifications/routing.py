"""Deciding who to tell: events in, delivery rows out (within the consumer's transaction)."""

from __future__ import annotations

from typing import Any

from services.notifications.messages import Message, payment_requested_for_referrer
from shared import topics
from shared.consumer import Incoming
from shared.db import DbConnection
from shared.deadletter import DeadLetter
from shared.events import cards as ev
from shared.events.payments import PaymentRequested
from shared.ids import uuid7
from shared.logging import get_logger, log_context

log = get_logger(__name__)

TOPICS = (topics.ORGANISATION_REGISTERED, topics.CARD_ISSUED, topics.PAYMENT_REQUESTED)


async def route(conn: DbConnection, batch: list[Incoming[Any]]) -> list[DeadLetter]:
    for incoming in batch:
        with log_context(correlation_id=incoming.correlation_id):
            await _route_one(conn, incoming)
    return []


async def _route_one(conn: DbConnection, incoming: Incoming[Any]) -> None:
    e = incoming.payload
    match e:
        case ev.OrganisationRegistered():
            await conn.execute(
                "INSERT INTO organisations (organisation_id, name, kind, contact_email, webhook_url)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (organisation_id) DO UPDATE SET"
                " name = excluded.name, contact_email = excluded.contact_email,"
                " webhook_url = excluded.webhook_url",
                e.organisation_id,
                e.name,
                e.kind.value,
                e.contact_email,
                e.webhook_url,
            )
        case ev.CardIssued():
            await conn.execute(
                "INSERT INTO holders (holder_id, referrer_org_id) VALUES ($1, $2)"
                " ON CONFLICT (holder_id) DO UPDATE SET referrer_org_id = excluded.referrer_org_id",
                e.holder_id,
                e.referrer_org_id,
            )
        case PaymentRequested() if e.payee_kind.value == "card_holder":
            org = await conn.fetchrow(
                "SELECT o.organisation_id, o.name, o.contact_email FROM holders h"
                " JOIN organisations o ON o.organisation_id = h.referrer_org_id WHERE h.holder_id = $1",
                e.payee_id,
            )
            if org is None or not org["contact_email"]:
                log.info("no referrer to tell", kind="payment_requested")
                return
            await _deliver(
                conn,
                incoming,
                "payment_requested",
                f"org:{org['organisation_id']}",
                org["contact_email"],
                payment_requested_for_referrer(e, org["name"]),
            )


async def _deliver(
    conn: DbConnection,
    incoming: Incoming[Any],
    kind: str,
    recipient: str,
    address: str,
    message: Message,
) -> None:
    inserted = await conn.fetchval(
        "INSERT INTO deliveries (delivery_id, event_id, correlation_id, kind, recipient, channel,"
        " address, subject, body) VALUES ($1, $2, $3, $4, $5, 'email', $6, $7, $8)"
        " ON CONFLICT (event_id, recipient) DO NOTHING RETURNING delivery_id",
        uuid7(),
        incoming.envelope.id,
        incoming.correlation_id,
        kind,
        recipient,
        address,
        message.subject,
        message.body,
    )
    if inserted is not None:
        await conn.execute("SELECT pg_notify('deliveries', '')")
        log.info("notification queued", kind=kind, recipient=recipient, channel="email")
