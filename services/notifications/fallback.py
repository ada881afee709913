"""When a card holder's e-mail is given up: the same message by letter, and their referrer
told that the address does not work.

Given up is dead, whichever way: refused for good (an SMTP 5xx, an address that is none),
or still failing temporarily (a 4xx, a timeout, a mail server away) after the last of its
attempts, about a day of them. Either way the holder would otherwise hear nothing. Only a
card holder's e-mail falls back: an organisation's or a partner's (e-mail or webhook) is
staff's, and their dead deliveries are the operators' (`ops.notification-dead.v1`).

Called in the transaction that marks the e-mail dead (delivery.py), once per delivery: the
letter is keyed by the failed delivery, and what the referrer hears by the holder's contact
details as they are now, so that ten refused messages make ten letters but one notice, and
a corrected address that fails again makes another. The notice names the card, never the
address. It is sent only when it was the address that was refused: for good (5xx to RCPT
TO, or not an address), or for now at the last attempt (4xx to RCPT TO: a full mailbox);
not for a message refused for its content, nor for a mail relay that could not be reached,
which says nothing about the holder's address.
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


def applies(row: asyncpg.Record) -> bool:
    """A card holder's e-mail (the delivery being given up: that is when this is asked)."""
    return row["channel"] == "email" and str(row["recipient"]).startswith(HOLDER_PREFIX)


async def email_failed(
    conn: DbConnection,
    row: asyncpg.Record,
    outcome: Outcome,
    payload: dict[str, Any],
    private_key: str | None,
) -> None:
    """`outcome`: what the e-mail's last attempt came to (permanent, or the last of its
    temporary failures)."""
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
    # since this message was written (it may work), nor a message refused for its content
    # or one our mail relay never took.
    told = False
    if (outcome.address_refused or outcome.address_deferred) and _same(
        row["address"], contact.email
    ):
        told = await _tell_referrer(conn, row, holder_id, contact.version, by_letter, outcome)
    log.info(
        "card holder's e-mail given up",
        kind=row["kind"],
        refused_for_good=outcome.permanent,
        letter_instead=by_letter,
        referrer_told=told,
    )


async def _tell_referrer(
    conn: DbConnection,
    row: asyncpg.Record,
    holder_id: uuid.UUID,
    version: str,
    by_letter: bool,
    outcome: Outcome,
) -> bool:
    referrer = await projections.referrer_of(conn, holder_id)
    org = await recipients.organisation(conn, referrer) if referrer else None
    if org is None:
        return False
    card_number = await projections.card_number_of(conn, holder_id) or "?"
    # One kind, one key per version of the contact details, whichever way the address
    # failed: the referrer hears about it once. The words say how it failed.
    wording = "holder_email_refused" if outcome.permanent else "holder_email_deferred"
    if not by_letter:
        wording += "_no_letter"
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
