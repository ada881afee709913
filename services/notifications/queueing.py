"""Queueing one notification: a delivery row, at most one per (event, recipient).

The row is written in the caller's transaction (the consumer's batch or a scheduled job),
so a notification exists exactly when the fact that caused it was recorded. What happens
next depends on the channel: e-mail and webhooks are sent by the delivery worker, letters
wait for the daily print batch, digestible e-mail waits for the recipient's daily digest.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.notifications.messages import Message
from services.notifications.recipients import Recipient
from shared.db import DbConnection
from shared.ids import uuid7
from shared.logging import get_logger, log_context

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


@dataclass(frozen=True)
class Notice:
    """One notification to queue: `key` names the fact (an event id or a derived key);
    at most one delivery exists per (key, recipient)."""

    key: uuid.UUID
    correlation_id: str
    kind: str
    recipient: Recipient
    message: Message
    payload: dict[str, Any]
    digestible: bool = False


# A batch of deliveries in one statement; the worker is woken (at commit) only if a new
# row is pending.
_QUEUE = """
WITH added AS (
    INSERT INTO deliveries (delivery_id, event_id, correlation_id, kind, recipient, channel,
                            address, subject, body, status, batch, last_error, language, payload)
    SELECT d.delivery_id, d.event_id, d.correlation_id, d.kind, d.recipient, d.channel,
           d.address, d.subject, d.body, d.status, d.batch, NULLIF(d.reason, ''), d.language,
           d.payload::jsonb
    FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[],
                $13::text[], $14::text[])
         AS d(delivery_id, event_id, correlation_id, kind, recipient, channel, address, subject,
              body, status, batch, reason, language, payload)
    ON CONFLICT (event_id, recipient) DO NOTHING
    RETURNING delivery_id, status
)
SELECT delivery_id FROM added
WHERE CASE WHEN EXISTS (SELECT 1 FROM added WHERE status = 'pending')
      THEN pg_notify('deliveries', '') IS NOT NULL ELSE true END
"""


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
    notice = Notice(key, correlation_id, kind, recipient, message, payload, digestible)
    return (await notify_many(conn, [notice]))[0]


async def notify_many(conn: DbConnection, notices: Sequence[Notice]) -> list[bool]:
    """Queue notifications in one statement; for each, False if queued before."""
    if not notices:
        return []
    rows = []
    for n in notices:
        status, batch, reason = _placement(n.recipient, n.kind, n.digestible)
        rows.append(
            (
                uuid7(),
                n.key,
                n.correlation_id,
                n.kind,
                n.recipient.key,
                n.recipient.channel or "email",
                n.recipient.address,
                n.message.subject,
                n.message.body,
                status,
                batch,
                reason,
                n.recipient.language,
                json.dumps(n.payload, default=str),
            )
        )
    added = {
        r["delivery_id"] for r in await conn.fetch(_QUEUE, *map(list, zip(*rows, strict=True)))
    }
    queued = []
    for notice, row in zip(notices, rows, strict=True):
        new = row[0] in added
        queued.append(new)
        if new:
            with log_context(correlation_id=notice.correlation_id):
                log.info(
                    "notification queued",
                    kind=notice.kind,
                    recipient=notice.recipient.key,
                    channel=notice.recipient.channel,
                    status=row[9],
                )
    return queued
