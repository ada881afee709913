"""Whom we can reach, and how: partners and card holders with their preferences applied.

A recipient key names the party, not the address: "org:<id>", "provider:<id>",
"holder:<id>", "finance". Preferences and opt-outs are stored per key.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from services.notifications.messages import Language, language_of
from shared.db import DbConnection
from shared.logging import get_logger
from shared.sealing import SealError, unseal

log = get_logger(__name__)


@dataclass(frozen=True)
class Recipient:
    key: str
    name: str | None  # whom the greeting addresses (None: a neutral greeting)
    channel: str | None  # email, webhook, letter; None: we have no way to reach them
    address: str
    language: Language = "nl"
    digest: bool = True
    opted_out: frozenset[str] = frozenset()

    def wants(self, kind: str) -> bool:
        return "*" not in self.opted_out and kind not in self.opted_out


async def _preferences(conn: DbConnection, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT channel, language, digest, opted_out FROM preferences WHERE recipient = $1", key
    )


def _with_preferences(
    key: str,
    name: str | None,
    reachable: dict[str, str],
    default_order: tuple[str, ...],
    prefs: Mapping[str, Any] | asyncpg.Record | None,
    language: str | None = None,
) -> Recipient:
    """Pick the preferred channel if it is reachable, else the first reachable default."""
    wanted = prefs["channel"] if prefs else None
    order = ((wanted,) if wanted else ()) + default_order
    channel = next((c for c in order if reachable.get(c)), None)
    return Recipient(
        key=key,
        name=name,
        channel=channel,
        address=reachable.get(channel, "") if channel else "",
        language=language_of((prefs["language"] if prefs else None) or language),
        digest=prefs["digest"] if prefs else True,
        opted_out=frozenset(prefs["opted_out"]) if prefs else frozenset(),
    )


async def organisation(conn: DbConnection, organisation_id: uuid.UUID) -> Recipient | None:
    row = await conn.fetchrow(
        "SELECT name, contact_email, webhook_url FROM organisations WHERE organisation_id = $1",
        organisation_id,
    )
    if row is None:
        return None
    key = f"org:{organisation_id}"
    # A partner with its own system gets webhooks; people get e-mail.
    reachable = {"webhook": row["webhook_url"], "email": row["contact_email"]}
    return _with_preferences(
        key, row["name"], reachable, ("webhook", "email"), await _preferences(conn, key)
    )


async def provider(conn: DbConnection, provider_id: uuid.UUID) -> Recipient | None:
    row = await conn.fetchrow(
        "SELECT p.name, p.contact_email, o.webhook_url FROM providers p"
        " LEFT JOIN organisations o ON o.organisation_id = p.organisation_id"
        " WHERE p.provider_id = $1",
        provider_id,
    )
    if row is None:
        return None
    key = f"provider:{provider_id}"
    reachable = {"webhook": row["webhook_url"], "email": row["contact_email"]}
    return _with_preferences(
        key, row["name"], reachable, ("webhook", "email"), await _preferences(conn, key)
    )


async def finance(conn: DbConnection, fallback_email: str | None) -> list[Recipient]:
    rows = await conn.fetch(
        "SELECT organisation_id FROM organisations WHERE kind = 'finance' ORDER BY organisation_id"
    )
    found = [await organisation(conn, r["organisation_id"]) for r in rows]
    recipients = [r for r in found if r is not None]
    if not recipients and fallback_email:
        prefs = await _preferences(conn, "finance")
        recipients = [
            _with_preferences(
                "finance", None, {"email": fallback_email}, ("email",), prefs, language="nl"
            )
        ]
    return recipients


async def holder(
    conn: DbConnection, holder_id: uuid.UUID, private_key: str | None
) -> Recipient | None:
    return (await holders(conn, [holder_id], private_key)).get(holder_id)


async def holders(
    conn: DbConnection, holder_ids: Iterable[uuid.UUID], private_key: str | None
) -> dict[uuid.UUID, Recipient]:
    """The card holders we can address (a holder without contact details is left out),
    with their preferences: in one round trip for a whole batch of claims."""
    rows = await conn.fetch(
        "SELECT h.holder_id, h.channel, h.language, h.contact_sealed, p.recipient AS prefs_of,"
        " p.channel AS preferred_channel, p.language AS preferred_language, p.digest,"
        " p.opted_out FROM holders h"
        " LEFT JOIN preferences p ON p.recipient = 'holder:' || h.holder_id::text"
        " WHERE h.holder_id = ANY($1::uuid[]) AND h.contact_sealed IS NOT NULL",
        list(set(holder_ids)),
    )
    return {row["holder_id"]: _holder(row, private_key) for row in rows}


def _holder_prefs(row: asyncpg.Record) -> dict[str, Any] | None:
    if row["prefs_of"] is None:
        return None
    return {
        "channel": row["preferred_channel"],
        "language": row["preferred_language"],
        "digest": row["digest"],
        "opted_out": row["opted_out"],
    }


def _reachable(row: asyncpg.Record, contact: dict[str, str]) -> dict[str, str]:
    if row["channel"] == "none":
        return {}
    name = contact.get("name") or None
    return {
        "email": contact.get("email") or "",
        # A letter needs the name above the postal address.
        "letter": f"{name}\n{contact['address']}" if contact.get("address") and name else "",
    }


def _holder(row: asyncpg.Record, private_key: str | None) -> Recipient:
    key = f"holder:{row['holder_id']}"
    contact = _open_contact(row["contact_sealed"], private_key)
    reachable = _reachable(row, contact)
    order = ("email", "letter") if row["channel"] == "email" else ("letter", "email")
    return _with_preferences(
        key,
        contact.get("name") or None,
        reachable,
        order,
        _holder_prefs(row),
        language=row["language"],
    )


@dataclass(frozen=True)
class HolderContact:
    """What we know now of how to reach a card holder whose e-mail was given up."""

    email: str  # the e-mail address of their current contact details ("" if none)
    letter: Recipient | None  # them by post, whatever channel they chose; None: no address
    # Different for every change of their contact details (the sealed text, never opened
    # here): what the referrer hears about an address is keyed by it, once per version.
    version: str


async def holder_contact(
    conn: DbConnection, holder_id: uuid.UUID, private_key: str | None
) -> HolderContact | None:
    """None for a holder we no longer know (erased) or whose details we cannot open."""
    row = await conn.fetchrow(
        "SELECT h.holder_id, h.channel, h.language, h.contact_sealed, p.recipient AS prefs_of,"
        " p.channel AS preferred_channel, p.language AS preferred_language, p.digest,"
        " p.opted_out FROM holders h"
        " LEFT JOIN preferences p ON p.recipient = 'holder:' || h.holder_id::text"
        " WHERE h.holder_id = $1 AND h.contact_sealed IS NOT NULL",
        holder_id,
    )
    if row is None:
        return None
    contact = _open_contact(row["contact_sealed"], private_key)
    if not contact:
        return None
    postal = _reachable(row, contact).get("letter")
    letter = (
        _with_preferences(
            f"holder:{holder_id}",
            contact.get("name") or None,
            {"letter": postal},
            ("letter",),
            _holder_prefs(row),
            language=row["language"],
        )
        if postal
        else None
    )
    return HolderContact(contact.get("email") or "", letter, row["contact_sealed"])


def _open_contact(sealed: str, private_key: str | None) -> dict[str, str]:
    if private_key is None:
        log.warning("no private key configured: card holder contact details stay closed")
        return {}
    try:
        return dict(_unsealed(private_key, sealed))
    except SealError as exc:
        log.warning("card holder contact details cannot be opened", error=str(exc))
        return {}


@functools.lru_cache(maxsize=2048)
def _unsealed(private_key: str, sealed: str) -> tuple[tuple[str, str], ...]:
    """Opening a sealed box costs an X25519 exchange (~60 µs), and every claim of a holder
    carries the same sealed contact: the same ciphertext always opens to the same text.
    A changed or erased contact is a different ciphertext (or none), never a stale hit."""
    return tuple((k, str(v)) for k, v in unseal(private_key, sealed).items() if v is not None)
