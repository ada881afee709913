"""Queueing one notification: a delivery row, at most one per (event, recipient).

The row is written in the caller's transaction (the consumer's batch or a scheduled job),
so a notification exists exactly when the fact that caused it was recorded. What happens
next depends on the channel: e-mail and webhooks are sent by the delivery worker, letters
wait for the daily print batch, digestible e-mail waits for the recipient's daily digest.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from services.notifications.messages import Message
from services.notifications.recipients import Recipient
from shared.db import DbConnection
from shared.ids import uuid7
from shared.logging import get_logger

log = get_logger(__name__)


def _placement(recipient: Recipient, kind: str, digestible: bool) -> tuple[str, str | None, str]:
    """(status, batch, reason-if-not-sent) for a new delivery."""
    if not recipient.wants(kind):
        return "skipped", None, "recipient opted out"
    if recipient.channel is None:
        return "skipped", None, "no channel to reach the recipient"
    if recipient.channel == "letter":
        return "scheduled", "letters", ""
    if recipient.channel == "email" and digestible and recipient.digest:
        return "scheduled", "digest", ""
    return "pending", None, ""


async def notify(
    conn: DbConnection,
    *,
    key: uuid.UUID,
    correlation_id: str,
    kind: str,
    recipient: Recipient,
    message: Message,
    payload: dict[str, Any],
    digestible: bool = False,
) -> bool:
    """Queue a notification; False when this (key, recipient) was queued before."""
    status, batch, reason = _placement(recipient, kind, digestible)
    # The worker is woken (at commit) in the same statement, only for a new pending row.
    inserted = await conn.fetchval(
        "WITH added AS (INSERT INTO deliveries (delivery_id, event_id, correlation_id, kind,"
        " recipient, channel, address, subject, body, status, batch, last_error, language,"
        " payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULLIF($12, ''), $13,"
        " $14::jsonb) ON CONFLICT (event_id, recipient) DO NOTHING RETURNING delivery_id)"
        " SELECT delivery_id FROM added"
        " WHERE CASE WHEN $10 = 'pending' THEN pg_notify('deliveries', '') IS NOT NULL"
        " ELSE true END",
        uuid7(),
        key,
        correlation_id,
        kind,
        recipient.key,
        recipient.channel or "email",
        recipient.address,
        message.subject,
        message.body,
        status,
        batch,
        reason,
        recipient.language,
        json.dumps(payload, default=str),
    )
    if inserted is None:
        return False
    log.info(
        "notification queued",
        kind=kind,
        recipient=recipient.key,
        channel=recipient.channel,
        status=status,
    )
    return True
