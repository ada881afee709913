"""The GDPR rights the desk serves: access (everything held, as JSON) and erasure by
crypto-shredding (the person's key is destroyed; opaque ids, events and ledger lines stay)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from services.cards.desk.cards import apply_action
from services.cards.desk.people import load_person
from services.cards.desk.unit import Unit
from services.cards.domain.access import Role, require_role
from services.cards.domain.lifecycle import CardAction
from services.cards.repository import audit, cards, eligibilities, people
from shared.events import cards as ev

_LIVE = frozenset({ev.CardStatus.ACTIVE.value, ev.CardStatus.BLOCKED.value})


def _plain(record: Any) -> dict[str, Any]:
    return {
        k: (v.isoformat() if hasattr(v, "isoformat") else str(v) if isinstance(v, uuid.UUID) else v)
        for k, v in dict(record).items()
    }


async def export_person(unit: Unit, person_id: uuid.UUID) -> dict[str, Any]:
    person = await load_person(unit, person_id, for_update=False)
    personal = unit.desk.vault.decrypt(person["data_key"], person["sealed_data"])
    held_cards = await cards.of_person(unit.conn, person_id)
    card_ids = {str(c["card_id"]) for c in held_cards}
    trail = [
        _plain(entry)
        for subject in (str(person_id), *card_ids)
        for entry in await audit.entries(unit.conn, subject_id=subject, limit=1000)
    ]
    await unit.audit("person.exported", "person", person_id)
    return {
        "person_id": str(person_id),
        "exported_at": datetime.now(UTC).isoformat(),
        "personal_data": personal,
        "record": _plain(
            {
                k: person[k]
                for k in (
                    "referrer_org_id",
                    "sub_municipality",
                    "resident",
                    "channel",
                    "language",
                    "created_at",
                )
            }
        ),
        "eligibilities": [_plain(e) for e in await eligibilities.of_person(unit.conn, person_id)],
        "cards": [_plain(c) for c in held_cards],
        "audit_trail": sorted(trail, key=lambda e: e["audit_id"]),
    }


async def erase_person(unit: Unit, person_id: uuid.UUID, reason: str) -> None:
    require_role(unit.principal, Role.PROGRAM_ADMIN)
    await load_person(unit, person_id)
    # The cards locked too: the daily job expires cards without locking their holder, and
    # a card it expired meanwhile must not be revoked from a status it no longer has.
    for card in await cards.of_person(unit.conn, person_id, for_update=True):
        if card["status"] in _LIVE:
            await apply_action(unit, card, CardAction.REVOKE, ev.CardStatusReason.HOLDER_ERASED)
    await people.shred(unit.conn, person_id)
    # Details not yet sent would reach finance and notifications after the erasure.
    await people.withdraw_unpublished_details(unit.conn, person_id)
    # Free text typed about the person may name them or their situation; the key that
    # sealed their details is gone, and so must be what was written beside them.
    await eligibilities.forget_evidence(unit.conn, person_id)
    card_ids = await cards.forget_reasons(unit.conn, person_id)
    await audit.forget_reasons(unit.conn, [str(person_id), *card_ids])
    await unit.publish(ev.HolderErased(holder_id=person_id, erased_at=datetime.now(UTC)))
    await unit.audit("person.erased", "person", person_id, reason)
