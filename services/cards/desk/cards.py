"""Issuing cards and moving them through their lifecycle. A replacement card keeps the
holder id, so the holder's budget and history (tracked by holder id) carry over."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime

import asyncpg

from services.cards.card_numbers import new_card_number
from services.cards.desk.people import load_person
from services.cards.desk.unit import Unit
from services.cards.domain import eligibility as rules
from services.cards.domain.errors import Conflict, NotFound
from services.cards.domain.lifecycle import CardAction, check_can_issue, next_status
from services.cards.domain.reasons import audit_reason, check_card_reason
from services.cards.repository import cards, eligibilities
from shared.events import cards as ev
from shared.ids import uuid7

_NUMBER_ATTEMPTS = 5


@dataclass(frozen=True)
class IssuedCard:
    card_id: uuid.UUID
    card_number: str


async def issue_card(
    unit: Unit, person_id: uuid.UUID, today: date, *, replaces: uuid.UUID | None = None
) -> IssuedCard:
    person = await load_person(unit, person_id)
    grant = await eligibilities.current(unit.conn, person_id)
    if grant is None:
        raise Conflict("eligibility: grant a target group and dates before issuing a card")
    rules.check_can_issue_on(
        rules.Period(grant["eligible_from"], grant["eligible_until"], grant["grace_days"]), today
    )
    held = await cards.of_person(unit.conn, person_id)
    check_can_issue(ev.CardStatus(c["status"]) for c in held)
    card_id = uuid7()
    card_number = await _insert_with_fresh_number(unit, card_id, person_id, replaces)
    await unit.publish(
        ev.CardIssued(
            card_id=card_id,
            card_number=card_number,
            holder_id=person_id,
            target_group=grant["target_group"],
            eligible_from=grant["eligible_from"],
            eligible_until=grant["eligible_until"],
            grace_days=grant["grace_days"],
            referrer_org_id=person["referrer_org_id"],
            resident=person["resident"],
            sub_municipality=person["sub_municipality"],
            issued_at=datetime.now(UTC),
            replaces_card_id=replaces,
        )
    )
    await unit.audit("card.issued", "card", card_id, f"for person {person_id}")
    return IssuedCard(card_id, card_number)


async def _insert_with_fresh_number(
    unit: Unit, card_id: uuid.UUID, person_id: uuid.UUID, replaces: uuid.UUID | None
) -> str:
    """Random numbers can collide; the unique index says so and we draw again. The person
    row is locked, so a clash on the active-card index cannot happen here."""
    for _ in range(_NUMBER_ATTEMPTS):
        number = new_card_number(unit.desk.settings.card_number_prefix)
        try:
            async with unit.conn.transaction():
                await cards.insert(unit.conn, card_id, number, person_id, replaces)
            return number
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "one_active_card_per_person":
                raise Conflict("card: this person already has an active card") from None
    raise RuntimeError("could not draw an unused card number")


async def load_card(unit: Unit, card_id: uuid.UUID) -> asyncpg.Record:
    """The card, locked, after checking the caller may touch its holder."""
    found = await cards.get(unit.conn, card_id)
    if found is None:
        raise NotFound(f"card: {card_id} does not exist")
    # Lock the person first, then the card: the same order as issue and erase.
    await load_person(unit, found["person_id"])
    card = await cards.get(unit.conn, card_id, for_update=True)
    assert card is not None
    return card


async def apply_action(
    unit: Unit,
    card: asyncpg.Record,
    action: CardAction,
    reason: ev.CardStatusReason,
    note: str | None = None,
) -> ev.CardStatus:
    """The event carries the reason's code only: the note, typed by a person, may name the
    holder and stays here (card and audit log), where erasure can blank it."""
    status = next_status(ev.CardStatus(card["status"]), action)
    await cards.set_status(unit.conn, card["card_id"], status.value, reason.value, note)
    await unit.publish(
        ev.CardStatusChanged(
            card_id=card["card_id"],
            card_number=card["card_number"],
            holder_id=card["person_id"],
            status=status,
            reason=reason,
            effective_at=datetime.now(UTC),
        )
    )
    await unit.audit(f"card.{action.value}", "card", card["card_id"], audit_reason(reason, note))
    return status


async def change_status(
    unit: Unit,
    card_id: uuid.UUID,
    action: CardAction,
    reason: ev.CardStatusReason,
    note: str | None = None,
) -> ev.CardStatus:
    """A person's change at the desk: the reason must be one offered for the action."""
    check_card_reason(action, reason, note)
    return await apply_action(unit, await load_card(unit, card_id), action, reason, note)


async def replace_card(
    unit: Unit,
    card_id: uuid.UUID,
    reason: ev.CardStatusReason,
    note: str | None,
    today: date,
) -> IssuedCard:
    """The old card becomes `replaced` first, so the new one can be the only active one."""
    check_card_reason(CardAction.REPLACE, reason, note)
    card = await load_card(unit, card_id)
    await apply_action(unit, card, CardAction.REPLACE, reason, note)
    return await issue_card(unit, card["person_id"], today, replaces=card_id)
