"""Must-show 2: invalid national numbers, IBANs and dates are refused naming the field and
why (without echoing the value); a CSV import imports good rows and reports the bad ones."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from shared import localtime
from tests.integration.cards.conftest import Desk, grant_body, new_holder, person_body
from vtp.demo.municipality import iban, national_number


def _errors(response: object) -> list[dict[str, str]]:
    body = response.json()  # type: ignore[attr-defined]
    return list(body["errors"])


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"national_number": "85.01.01-123.45"}, "national_number", "check digits"),
        ({"national_number": "123"}, "national_number", "must have 11 digits"),
        ({"national_number": "abcdefghijk"}, "national_number", "only digits"),
        ({"iban": "BE68 5390 0754 7035"}, "iban", "check digits"),
        ({"iban": "BE68539007547"}, "iban", "length"),
        ({"date_of_birth": "1985-13-01"}, "date_of_birth", "valid date"),
        (
            {"date_of_birth": (localtime.today() + timedelta(days=1)).isoformat()},
            "date_of_birth",
            "future",
        ),
        ({"email": "not-an-address"}, "email", "email"),
        ({"channel": "pigeon"}, "channel", "'email', 'letter' or 'none'"),
    ],
)
async def test_person_fields_refused(
    desk: Desk, overrides: dict[str, str], field: str, reason: str
) -> None:
    body = person_body(21, **overrides)
    response = await desk.referrer.post("/people", json=body)
    assert response.status_code == 422, response.text
    errors = _errors(response)
    assert errors[0]["field"] == field
    assert reason in errors[0]["reason"]
    assert response.json()["detail"].startswith(f"{field}: ")
    for sensitive in ("national_number", "iban"):
        assert body[sensitive].replace(" ", "") not in response.text.replace(" ", "")
    assert await desk.outbox("cards.holder-details-changed.v1") == []


async def test_national_number_must_match_birth_date(desk: Desk) -> None:
    number = national_number(random.Random(3), date(1985, 3, 4))
    body = person_body(22, national_number=number, date_of_birth="1985-03-05")
    response = await desk.referrer.post("/people", json=body)
    assert response.status_code == 422
    assert response.json()["detail"] == "national_number: does not match date_of_birth"


async def test_duplicate_national_number(desk: Desk) -> None:
    assert (await desk.referrer.post("/people", json=person_body(23))).status_code == 201
    again = await desk.referrer.post("/people", json=person_body(23, first_name="Other"))
    assert again.status_code == 409
    assert again.json()["detail"] == (
        "national_number: a person with this number is already registered"
    )


async def test_eligibility_dates_and_groups(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 24, card=False)
    path = f"/people/{ids['person_id']}/eligibility"
    backwards = await desk.referrer.post(
        path, json=grant_body(eligible_from="2026-05-01", eligible_until="2026-04-30")
    )
    assert backwards.status_code == 422
    assert _errors(backwards) == [
        {"field": "eligible_until", "reason": "2026-04-30 is before eligible_from 2026-05-01"}
    ]
    group = await desk.referrer.post(path, json=grant_body(target_group="students"))
    assert group.status_code == 422 and _errors(group)[0]["field"] == "target_group"
    malformed = await desk.referrer.post(path, json=grant_body(eligible_from="01/05/2026"))
    assert malformed.status_code == 422 and _errors(malformed)[0]["field"] == "eligible_from"
    grace = await desk.referrer.post(path, json=grant_body(grace_days=-1))
    assert _errors(grace)[0]["field"] == "grace_days"
    shorter = await desk.referrer.post(
        f"{path}/{ids['eligibility_id']}/extension",
        json={"eligible_until": localtime.today().isoformat(), "reason": "shorter"},
    )
    assert shorter.status_code == 422
    assert "an extension must end after the current end date" in shorter.json()["detail"]


async def test_update_refuses_a_bad_iban_and_emits_on_a_good_one(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 25, card=False)
    bad = await desk.referrer.patch(f"/people/{ids['person_id']}", json={"iban": "BE00 0000"})
    assert bad.status_code == 422 and _errors(bad)[0]["field"] == "iban"
    good = await desk.referrer.patch(
        f"/people/{ids['person_id']}",
        json={"iban": iban(random.Random(99)), "channel": "letter"},
    )
    assert good.status_code == 200, good.text
    details = await desk.outbox("cards.holder-details-changed.v1")
    assert [d["channel"] for d in details] == ["email", "letter"]


async def test_csv_import_keeps_good_rows_and_reports_bad_ones(desk: Desk) -> None:
    rng = random.Random(5)
    born = date(1979, 4, 2)
    good_one = national_number(rng, born)
    good_two = national_number(rng, date(1990, 7, 7))
    today = localtime.today()
    start, end = (today - timedelta(days=1)).isoformat(), (today + timedelta(days=300)).isoformat()
    lines = [
        "first_name;last_name;date_of_birth;national_number;iban;target_group;eligible_from;eligible_until;issue_card",
        f"An;Peeters;1979-04-02;{good_one};{iban(rng)};poverty;{start};{end};ja",
        f"Bart;Maes;1979-04-02;79040212399;;poverty;{start};{end};ja",  # bad check digits
        f"Chloë;Claes;1990-07-07;{good_two};BE00 1234;senior;{start};{end};nee",  # bad IBAN
        f"Dries;Jacobs;1990-07-07;{good_two};;senior;{start};{end};nee",  # good, no card
        f"Emma;Willems;1980-02-30;80023012345;;poverty;{start};{end};ja",  # no such date
        f"Fatima;Mertens;1979-04-02;{good_one};;poverty;{start};{end};ja",  # duplicate of line 2
        f"Gert;Goossens;1985-01-01;{national_number(rng, date(1985, 1, 1))};;students;{start};{end};ja",
    ]
    response = await desk.referrer.post(
        "/people/import", content="\n".join(lines).encode(), headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert [r["line"] for r in report["imported"]] == [2, 5]
    assert report["imported"][0]["card_number"] is not None
    assert report["imported"][1]["card_number"] is None
    rejected = {r["line"]: r["errors"][0] for r in report["rejected"]}
    assert rejected[3] == {
        "field": "national_number",
        "reason": "the check digits do not match the number",
    }
    assert rejected[4]["field"] == "iban"
    assert rejected[6]["field"] == "date_of_birth"
    assert rejected[7] == {
        "field": "national_number",
        "reason": "a person with this number is already registered",
    }
    assert rejected[8]["field"] == "target_group"
    assert report["imported_count"] == 2 and report["rejected_count"] == 5
    assert good_one not in response.text and "79040212399" not in response.text
    assert len(await desk.outbox("cards.card-issued.v1")) == 1
    async with desk.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM people") == 2


async def test_csv_with_missing_columns_is_refused(desk: Desk) -> None:
    response = await desk.referrer.post(
        "/people/import",
        content=b"first_name,last_name\nAn,Peeters\n",
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "csv"
    assert "national_number" in response.json()["detail"]
