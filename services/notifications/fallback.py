"""When a card holder's e-mail fails for good: the same message by letter, and their
referrer told that the address does not work.

Called in the transaction that marks the e-mail dead (delivery.py), once per delivery: the
letter is keyed by the failed delivery, and what the referrer hears by the holder's contact
details as they are now, so that ten refused messages make ten letters but one notice, and
a corrected address that fails again makes another. The notice names the card, never the
address.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import asyncpg

from services.notifications import projections, recipients
from services.notifications.messages import Message, language_of, render
from services.notifications.outcomes import Outcome
from services.notifications.queueing import notify
from services.notifications.signals import notification_key
from shared.db import DbConnection
from shared.logging import get_logger

log = get_logger(__name__)

HOLDER_PREFIX = "holder:"


def applies(row: asyncpg.Record, outcome: Outcome) -> bool:
    """A card holder's e-mail that will never arrive."""
    return (
        outcome.permanent
        and row["channel"] == "email"
        and str(row["recipient"]).startswith(HOLDER_PREFIX)
    )


async def email_failed(
    conn: DbConnection,
    row: asyncpg.Record,
    outcome: Outcome,
    payload: dict[str, Any],
    private_key: str | None,
) -> None:
    holder_id = uuid.UUID(str(row["recipient"]).removeprefix(HOLDER_PREFIX))
    contact = await recipients.holder_contact(conn, holder_id, private_key)
    if contact is None:  # erased meanwhile, or details we cannot open
        log.info("e-mail failed: card holder no longer known", kind=row["kind"])
        return
    letter = contact.letter
    by_letter = letter is not None and letter.channel == "letter" and letter.wants(row["kind"])
    if letter is not None and by_letter:
        # The message as it was written (same greeting, same text, same language).
        await notify(
            conn,
            key=notification_key("letter-instead-of-email", row["delivery_id"]),
            correlation_id=row["correlation_id"],
            kind=row["kind"],
            recipient=_in_language(letter, row["language"]),
            message=Message(row["subject"], row["body"]),
            payload=payload,
        )
    # The referrer can correct an address that does not work; not one that was changed
    # since this message was written (it may work), nor a message refused for its content.
    told = False
    if outcome.address_refused and _same(row["address"], contact.email):
        told = await _tell_referrer(conn, row, holder_id, contact.version, by_letter)
    log.info(
        "card holder's e-mail failed for good",
        kind=row["kind"],
        letter_instead=by_letter,
        referrer_told=told,
    )


async def _tell_referrer(
    conn: DbConnection, row: asyncpg.Record, holder_id: uuid.UUID, version: str, by_letter: bool
) -> bool:
    referrer = await projections.referrer_of(conn, holder_id)
    org = await recipients.organisation(conn, referrer) if referrer else None
    if org is None:
        return False
    card_number = await projections.card_number_of(conn, holder_id) or "?"
    wording = "holder_email_refused" if by_letter else "holder_email_refused_no_letter"
    return await notify(
        conn,
        key=notification_key("holder-email-refused", holder_id, version),
        correlation_id=row["correlation_id"],
        kind="holder_email_refused",
        recipient=org,
        message=render(wording, org.language, org.name, card_number=card_number),
        payload={
            "holder_id": str(holder_id),
            "card_number": card_number,
            "sent_by_letter": by_letter,
        },
        digestible=True,
    )


def _same(address: str, current: str) -> bool:
    return address.strip().casefold() == current.strip().casefold() != ""


def _in_language(recipient: recipients.Recipient, language: str) -> recipients.Recipient:
    return replace(recipient, language=language_of(language))
