"""A typo in a holder's name is corrected at the desk (PATCH /people/{id}): stored encrypted,
audited without the name, and re-sealed for finance (the bank transfer's beneficiary name)
and notifications (letters). The national number and birth date stay: another one is
another person."""

from __future__ import annotations

import random
from datetime import date
from typing import Any

import pytest

from shared.sealing import unseal
from tests.integration.cards.conftest import Desk, new_holder, person_body
from vtp.demo.municipality import national_number

DETAILS_TOPIC = "cards.holder-details-changed.v1"


async def _details_of(desk: Desk, person_id: str) -> list[dict[str, Any]]:
    return [e for e in await desk.outbox(DETAILS_TOPIC) if e["holder_id"] == person_id]


async def _personal_data(desk: Desk, person_id: str) -> dict[str, Any]:
    export = await desk.referrer.get(f"/people/{person_id}/export")
    assert export.status_code == 200, export.text
    personal: dict[str, Any] = export.json()["personal_data"]
    return personal


async def test_a_corrected_name_is_stored_audited_without_it_and_resealed(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 61, card=False)
    person = ids["person_id"]
    before = await _personal_data(desk, person)
    assert (before["first_name"], before["last_name"]) == ("Testa", "Persoon61")

    corrected = await desk.referrer.patch(
        f"/people/{person}", json={"first_name": "Tessa", "last_name": "Persoons-Zwijsen"}
    )
    assert corrected.status_code == 200, corrected.text

    after = await _personal_data(desk, person)
    assert (after["first_name"], after["last_name"]) == ("Tessa", "Persoons-Zwijsen")
    # Everything else in the personal file is as it was.
    assert {k: v for k, v in after.items() if not k.endswith("_name")} == {
        k: v for k, v in before.items() if not k.endswith("_name")
    }
    async with desk.pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT sealed_data FROM people WHERE person_id = $1::uuid", person
        )
        audited = await conn.fetch(
            "SELECT action, a::text AS line FROM audit_log a WHERE subject_id = $1"
            " ORDER BY audit_id",
            person,
        )
    assert b"Zwijsen" not in bytes(stored)  # encrypted, as at registration
    assert "person.updated:first_name,last_name" in [r["action"] for r in audited]
    assert not [r["line"] for r in audited if "Tessa" in r["line"] or "Zwijsen" in r["line"]]

    registered, changed = await _details_of(desk, person)
    beneficiary = unseal(desk.finance_private_key, changed["beneficiary_sealed"])
    assert beneficiary == {"name": "Tessa Persoons-Zwijsen", "iban": before["iban"]}
    assert unseal(desk.finance_private_key, registered["beneficiary_sealed"])["name"] == (
        "Testa Persoon61"
    )
    contact = unseal(desk.notifications_private_key, changed["contact_sealed"])
    assert contact == {
        "name": "Tessa Persoons-Zwijsen",
        "email": before["email"],
        "address": before["address"],
    }
    assert b"Zwijsen" not in await desk.all_outbox_bytes()  # only sealed, never readable


async def test_a_name_alone_is_corrected_and_without_an_iban_only_the_contact_travels(
    desk: Desk,
) -> None:
    created = await desk.referrer.post("/people", json=person_body(62, iban=None))
    assert created.status_code == 201, created.text
    person = created.json()["id"]

    corrected = await desk.referrer.patch(f"/people/{person}", json={"last_name": "Persoon26"})
    assert corrected.status_code == 200, corrected.text

    after = await _personal_data(desk, person)
    assert (after["first_name"], after["last_name"]) == ("Testa", "Persoon26")
    _registered, changed = await _details_of(desk, person)
    assert changed["beneficiary_sealed"] is None
    contact = unseal(desk.notifications_private_key, changed["contact_sealed"])
    assert contact["name"] == "Testa Persoon26"


async def test_a_referrer_of_another_organisation_may_not_correct_the_name(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 63, card=False)
    other_org = await desk.organisation("Welzijnsraad", "welfare_council")
    other = desk.client(await desk.token("referrer", organisation_id=other_org))

    refused = await other.patch(f"/people/{ids['person_id']}", json={"first_name": "Tessa"})
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"] == "person: this person is followed by another organisation"
    assert (await _personal_data(desk, ids["person_id"]))["first_name"] == "Testa"
    assert len(await _details_of(desk, ids["person_id"])) == 1  # registration's only


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"first_name": ""}, "first_name", "at least 1 character"),
        ({"last_name": "Zwx" * 34}, "last_name", "at most 100 characters"),
        ({"last_name": "Zwx\x00q"}, "last_name", "control character"),
        ({"first_name": "Zwx\x1b[31m"}, "first_name", "control character"),
        ({"first_name": None}, "first_name", "cannot be cleared"),
    ],
    ids=["empty", "too_long", "nul", "escape", "null"],
)
async def test_an_empty_or_unprintable_name_is_refused_by_field_without_echo(
    desk: Desk, body: dict[str, Any], field: str, reason: str
) -> None:
    ids = await new_holder(desk.referrer, 64, card=False)
    refused = await desk.referrer.patch(f"/people/{ids['person_id']}", json=body)
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert error["field"] == field and reason in error["reason"]
    assert "Zwx" not in refused.text
    assert (await _personal_data(desk, ids["person_id"]))[field] == person_body(64)[field]
    assert len(await _details_of(desk, ids["person_id"])) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("national_number", national_number(random.Random(7), date(1971, 2, 3))),
        ("date_of_birth", "1971-02-03"),
        ("date_of_birth", None),
    ],
    ids=["national_number", "date_of_birth", "date_of_birth_null"],
)
async def test_the_national_number_and_birth_date_cannot_be_changed(
    desk: Desk, field: str, value: str | None
) -> None:
    ids = await new_holder(desk.referrer, 65, card=False)
    refused = await desk.referrer.patch(
        f"/people/{ids['person_id']}", json={"first_name": "Tessa", field: value}
    )
    assert refused.status_code == 422, refused.text
    [error] = refused.json()["errors"]
    assert error["field"] == field
    assert error["reason"].startswith("cannot be changed: another national number or birth date")
    if value is not None:
        assert value not in refused.text
    personal = await _personal_data(desk, ids["person_id"])
    expected = person_body(65)
    assert personal["first_name"] == "Testa"  # the whole request was refused
    assert (personal["national_number"], personal["date_of_birth"]) == (
        expected["national_number"],
        expected["date_of_birth"],
    )
