"""Registering people, changing their details, granting and extending eligibility."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from services.cards.desk.unit import Unit
from services.cards.domain import eligibility as rules
from services.cards.domain.access import Principal, check_person_access, referrer_org_for
from services.cards.domain.errors import Conflict, InvalidField, NotFound
from services.cards.domain.validation import (
    check_birth_date,
    check_reachable,
    default_channel,
    parse_iban,
    parse_national_number,
)
from services.cards.repository import eligibilities, organisations, people
from services.cards.schemas import NewEligibility, NewPerson, PersonUpdate
from shared.events import cards as ev
from shared.ids import uuid7
from shared.sealing import seal


def national_number_digest(master_key_hex: str, number: str) -> str:
    """A keyed hash finds duplicates without keeping the number readable."""
    return hmac.new(bytes.fromhex(master_key_hex), number.encode(), hashlib.sha256).hexdigest()


async def load_person(
    unit: Unit, person_id: uuid.UUID, *, for_update: bool = True
) -> asyncpg.Record:
    """The person, if the caller may touch them and they were not erased."""
    person = await people.get(unit.conn, person_id, for_update=for_update)
    if person is None:
        raise NotFound(f"person: {person_id} does not exist")
    check_person_access(unit.principal, person["referrer_org_id"])
    if person["erased_at"] is not None:
        raise Conflict("person: this person's data was erased")
    return person


def _details_event(
    unit: Unit,
    person_id: uuid.UUID,
    org_id: uuid.UUID,
    personal: dict[str, Any],
    channel: str,
    language: str,
) -> ev.HolderDetailsChanged:
    settings = unit.desk.settings
    name = f"{personal['first_name']} {personal['last_name']}"
    return ev.HolderDetailsChanged(
        holder_id=person_id,
        referrer_org_id=org_id,
        channel=channel,
        language=language,
        beneficiary_sealed=seal(
            settings.finance_public_key, {"name": name, "iban": personal["iban"]}
        )
        if personal.get("iban")
        else None,
        contact_sealed=seal(
            settings.notifications_public_key,
            {"name": name, "email": personal.get("email"), "address": personal.get("address")},
        ),
        changed_at=datetime.now(UTC),
    )


async def register_person(unit: Unit, body: NewPerson, today: date) -> uuid.UUID:
    org_id = referrer_org_for(unit.principal, body.referrer_org_id)
    check_birth_date(body.date_of_birth, today)
    number = parse_national_number(body.national_number, body.date_of_birth)
    iban = parse_iban(body.iban) if body.iban else None
    channel = body.channel or default_channel(body.email, body.address)
    check_reachable(channel, body.email, body.address)
    if not await organisations.exists(unit.conn, org_id):
        raise InvalidField("referrer_org_id", "is not a known organisation")
    person_id = uuid7()
    vault = unit.desk.vault
    data_key = vault.new_data_key()
    personal = {
        "first_name": body.first_name,
        "last_name": body.last_name,
        "date_of_birth": body.date_of_birth.isoformat(),
        "national_number": number,
        "iban": iban,
        "email": body.email,
        "address": body.address,
    }
    try:
        # A savepoint: a duplicate must not poison a caller's surrounding transaction.
        async with unit.conn.transaction():
            await people.insert(
                unit.conn,
                person_id=person_id,
                referrer_org_id=org_id,
                data_key=data_key,
                sealed_data=vault.encrypt(data_key, personal),
                national_number_hash=national_number_digest(unit.desk.settings.master_key, number),
                sub_municipality=body.sub_municipality,
                resident=body.resident,
                channel=channel,
                language=body.language,
            )
    except asyncpg.UniqueViolationError:
        raise Conflict("national_number: a person with this number is already registered") from None
    await unit.publish(_details_event(unit, person_id, org_id, personal, channel, body.language))
    await unit.audit("person.registered", "person", person_id)
    return person_id


async def update_person(unit: Unit, person_id: uuid.UUID, body: PersonUpdate) -> None:
    person = await load_person(unit, person_id)
    vault = unit.desk.vault
    personal = vault.decrypt(person["data_key"], person["sealed_data"])
    changes = body.model_dump(exclude_unset=True)
    if changes.get("iban"):
        changes["iban"] = parse_iban(changes["iban"])
    # A corrected name is re-sealed below for finance (the bank may refuse a transfer whose
    # name does not match the account) and notifications (letters), as at registration.
    for key in ("first_name", "last_name", "iban", "email", "address"):
        if key in changes:
            personal[key] = changes[key]
    channel = changes.get("channel") or person["channel"]
    if changes.keys() & {"channel", "email", "address"}:
        # Against the stored details too: clearing the e-mail address of a holder on
        # channel email would leave them unreachable.
        check_reachable(channel, personal.get("email"), personal.get("address"))
    language = changes.get("language") or person["language"]
    sub = (
        changes["sub_municipality"] if "sub_municipality" in changes else person["sub_municipality"]
    )
    await people.update(
        unit.conn,
        person_id,
        sealed_data=vault.encrypt(person["data_key"], personal),
        sub_municipality=sub,
        channel=channel,
        language=language,
    )
    await unit.publish(
        _details_event(unit, person_id, person["referrer_org_id"], personal, channel, language)
    )
    # Field names only: the values are personal.
    await unit.audit(f"person.updated:{','.join(sorted(changes))}", "person", person_id)


async def grant_eligibility(
    unit: Unit, person_id: uuid.UUID, body: NewEligibility, today: date
) -> uuid.UUID:
    person = await load_person(unit, person_id)
    rules.check_target_group(body.target_group, unit.desk.settings.target_groups)
    rules.check_period(body.eligible_from, body.eligible_until, today, body.grace_days)
    eligibility_id = uuid7()
    granted_by = _granting_org(unit.principal, person["referrer_org_id"])
    await eligibilities.insert(
        unit.conn,
        eligibility_id=eligibility_id,
        person_id=person_id,
        target_group=body.target_group,
        eligible_from=body.eligible_from,
        eligible_until=body.eligible_until,
        grace_days=body.grace_days,
        evidence_ref=body.evidence_ref,
        granted_by=granted_by,
    )
    await _announce_current(unit, person_id, person["referrer_org_id"])
    await unit.audit("eligibility.granted", "person", person_id)
    return eligibility_id


async def extend_eligibility(
    unit: Unit,
    person_id: uuid.UUID,
    eligibility_id: uuid.UUID,
    new_until: date,
    reason: str,
    today: date,
) -> None:
    person = await load_person(unit, person_id)
    row = await eligibilities.get(unit.conn, eligibility_id)
    if row is None or row["person_id"] != person_id:
        raise NotFound(f"eligibility: {eligibility_id} does not exist for this person")
    period = rules.extended(
        rules.Period(row["eligible_from"], row["eligible_until"], row["grace_days"]),
        new_until,
        today,
    )
    await eligibilities.extend(unit.conn, eligibility_id, period.eligible_until)
    await _announce_current(unit, person_id, person["referrer_org_id"])
    await unit.audit("eligibility.extended", "person", person_id, reason)


def _granting_org(principal: Principal, person_org: uuid.UUID) -> uuid.UUID:
    # The program administrator grants on behalf of the person's referrer.
    return principal.organisation_id or person_org


async def _announce_current(unit: Unit, person_id: uuid.UUID, org_id: uuid.UUID) -> None:
    """All the person's grants, past ones too: a late check-in is judged by the grant of its
    own day. The top-level fields keep the one that reaches furthest, for older readers."""
    current = await eligibilities.current(unit.conn, person_id)
    assert current is not None
    grants = await eligibilities.of_person(unit.conn, person_id)
    await unit.publish(
        ev.EligibilityChanged(
            holder_id=person_id,
            target_group=current["target_group"],
            eligible_from=current["eligible_from"],
            eligible_until=current["eligible_until"],
            grace_days=current["grace_days"],
            referrer_org_id=org_id,
            changed_at=datetime.now(UTC),
            grants=tuple(
                ev.EligibilityGrant(
                    target_group=g["target_group"],
                    eligible_from=g["eligible_from"],
                    eligible_until=g["eligible_until"],
                    grace_days=g["grace_days"],
                )
                for g in grants
            ),
        )
    )
