"""Input that used to be accepted wrongly or to crash the desk with a 500: each is now a 422
(or 403) that names the field and says why, and changes nothing."""

from __future__ import annotations

import csv
import random
import uuid
from datetime import date, timedelta
from typing import Any

import pytest

from shared import localtime
from tests.integration.cards.conftest import Desk, grant_body, new_holder, person_body
from vtp.demo.municipality import national_number

PROVIDER_TOPIC = "cards.provider-registered.v1"
DETAILS_TOPIC = "cards.holder-details-changed.v1"


def _errors(response: Any) -> list[dict[str, str]]:
    return list(response.json()["errors"])


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://[::1", "must be an absolute https URL"),
        ("ocmw.be/hook", "must be an absolute https URL"),
        ("http://ocmw.be/hook", "must use https"),
        ("https://user:secret@ocmw.be/hook", "must not contain a user name or password"),
    ],
)
async def test_organisation_webhook_must_be_an_https_url(desk: Desk, url: str, reason: str) -> None:
    response = await desk.admin.post(
        "/organisations", json={"name": "OCMW", "kind": "ocmw", "webhook_url": url}
    )
    assert response.status_code == 422, response.text
    [error] = _errors(response)
    assert error["field"] == "webhook_url" and reason in error["reason"]
    assert len(await desk.outbox("cards.organisation-registered.v1")) == 1  # the fixture's


async def test_organisation_with_an_https_webhook(desk: Desk) -> None:
    url = "https://ocmw.example.org/vtp/hook?tenant=heist"
    response = await desk.admin.post(
        "/organisations", json={"name": "OCMW", "kind": "ocmw", "webhook_url": url}
    )
    assert response.status_code == 201, response.text
    events = await desk.outbox("cards.organisation-registered.v1")
    assert events[-1]["webhook_url"] == url


async def test_expiry_job_refuses_a_future_day(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 40)
    operator = desk.client(await desk.token("operator"))
    response = await operator.post("/jobs/expiry", params={"today": "2099-01-01"})
    assert response.status_code == 422, response.text
    assert _errors(response)[0]["field"] == "today"
    assert "lies in the future" in response.json()["detail"]
    assert (await desk.referrer.get(f"/cards/{ids['card_id']}")).json()["status"] == "active"
    assert await desk.outbox("cards.card-status-changed.v1") == []
    far = await operator.post("/jobs/expiry", params={"today": "9999-12-31"})
    assert far.status_code == 422


@pytest.mark.parametrize("limit", ["-1", "0", "1001", "many"])
async def test_audit_limit_is_bounded(desk: Desk, limit: str) -> None:
    response = await desk.admin.get("/audit", params={"limit": limit})
    assert response.status_code == 422, response.text
    assert _errors(response)[0]["field"] == "limit"


async def test_audit_limit_within_bounds(desk: Desk) -> None:
    response = await desk.admin.get("/audit", params={"limit": 1})
    assert response.status_code == 200 and len(response.json()) == 1


async def test_provider_change_keeps_or_checks_its_organisation(desk: Desk) -> None:
    base = {"name": "Jeugddienst", "sub_municipality": "Hallaar"}
    created = await desk.admin.post(
        "/providers", json={**base, "organisation_id": desk.org_id, "mode": "till_discount"}
    )
    provider = created.json()["id"]
    path = f"/providers/{provider}"

    # Omitted: the stored organisation (and mode) stay, in the database and in the event.
    renamed = await desk.admin.put(path, json={**base, "name": "Jeugddienst Heist"})
    assert renamed.status_code == 200, renamed.text
    events = await desk.outbox(PROVIDER_TOPIC)
    assert events[-1]["organisation_id"] == desk.org_id
    assert events[-1]["mode"] == "till_discount"

    unknown = await desk.admin.put(path, json={**base, "organisation_id": str(uuid.uuid4())})
    assert unknown.status_code == 422, unknown.text
    assert _errors(unknown) == [
        {"field": "organisation_id", "reason": "is not a known organisation"}
    ]
    assert len(await desk.outbox(PROVIDER_TOPIC)) == 2

    other = await desk.organisation("Sportdienst", "municipal_service")
    moved = await desk.admin.put(path, json={**base, "organisation_id": other})
    assert moved.status_code == 200, moved.text
    assert (await desk.outbox(PROVIDER_TOPIC))[-1]["organisation_id"] == other
    [listed] = (await desk.admin.get("/providers")).json()
    assert listed["organisation_id"] == other and listed["mode"] == "till_discount"


async def test_provider_admin_is_told_which_fields_are_reserved(desk: Desk) -> None:
    base = {"name": "Jeugddienst", "sub_municipality": "Hallaar", "mode": "till_discount"}
    provider = (await desk.admin.post("/providers", json={**base, "partner": False})).json()["id"]
    own = desk.client(await desk.token("provider_admin", provider_id=provider))
    path = f"/providers/{provider}"
    # Leaving mode and partner out keeps them: a provider can still rename itself.
    renamed = await own.put(path, json={"name": "JD Heist", "sub_municipality": "Hallaar"})
    assert renamed.status_code == 200, renamed.text
    refused = await own.put(
        path,
        json={
            "name": "JD Heist",
            "sub_municipality": "Hallaar",
            "mode": "refund",
            "partner": True,
            "organisation_id": desk.org_id,
        },
    )
    assert refused.status_code == 403
    assert refused.json()["detail"] == (
        "mode, partner, organisation_id: role provider_admin may not change these"
        " (allowed: program_admin); leave it out or send the current value"
    )
    [listed] = (await desk.admin.get("/providers")).json()
    assert (listed["name"], listed["mode"], listed["partner"], listed["organisation_id"]) == (
        "JD Heist",
        "till_discount",
        False,
        None,
    )


async def test_a_grant_reaching_year_9999_is_refused(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 41, card=False)
    path = f"/people/{ids['person_id']}/eligibility"
    response = await desk.referrer.post(
        path, json=grant_body(eligible_from="9999-12-01", eligible_until="9999-12-31")
    )
    assert response.status_code == 422, response.text
    [error] = _errors(response)
    assert error["field"] == "eligible_until" and "at most 10 years ahead" in error["reason"]
    # The person's card is issued on the grant they have, and the refused one is not stored.
    assert (await desk.referrer.post(f"/people/{ids['person_id']}/cards")).status_code == 201
    summary = (await desk.referrer.get(f"/people/{ids['person_id']}")).json()
    assert len(summary["eligibilities"]) == 1
    extension = await desk.referrer.post(
        f"{path}/{ids['eligibility_id']}/extension",
        json={
            "eligible_until": (localtime.today() + timedelta(days=11 * 366)).isoformat(),
            "reason": "x",
        },
    )
    assert extension.status_code == 422


async def test_a_bis_number_is_accepted_and_kept_like_a_national_number(desk: Desk) -> None:
    body = person_body(42, national_number="01.49.07-001.85", date_of_birth="2001-09-07")
    response = await desk.referrer.post("/people", json=body)
    assert response.status_code == 201, response.text
    assert b"01490700185" not in await desk.all_outbox_bytes()
    async with desk.pool.acquire() as conn:
        stored = await conn.fetchval("SELECT p::text FROM people p")
    assert "01490700185" not in stored
    again = await desk.referrer.post("/people", json={**body, "national_number": "01490700185"})
    assert again.status_code == 409  # found again through the same keyed hash


async def test_a_channel_needs_its_contact_detail(desk: Desk) -> None:
    no_email = person_body(43, channel="email", email=None)
    response = await desk.referrer.post("/people", json=no_email)
    assert response.status_code == 422, response.text
    assert _errors(response) == [
        {"field": "email", "reason": "is required for channel email (or choose channel letter)"}
    ]
    no_address = person_body(43, channel="letter", address=None)
    assert _errors(await desk.referrer.post("/people", json=no_address))[0]["field"] == "address"
    assert await desk.outbox(DETAILS_TOPIC) == []

    # Without a channel: the contact detail given decides.
    letter = await desk.referrer.post("/people", json=person_body(44, email=None))
    assert letter.status_code == 201, letter.text
    assert (await desk.outbox(DETAILS_TOPIC))[-1]["channel"] == "letter"

    ids = await new_holder(desk.referrer, 45, card=False)
    person = f"/people/{ids['person_id']}"
    cleared = await desk.referrer.patch(person, json={"email": None})
    assert cleared.status_code == 422 and _errors(cleared)[0]["field"] == "email"
    switched = await desk.referrer.patch(person, json={"email": None, "channel": "letter"})
    assert switched.status_code == 200, switched.text
    unaddressed = await desk.referrer.patch(person, json={"address": None})
    assert unaddressed.status_code == 422 and _errors(unaddressed)[0]["field"] == "address"
    assert (await desk.referrer.get(person)).json()["channel"] == "letter"


def _csv(*rows: str) -> bytes:
    header = "first_name;last_name;date_of_birth;national_number;target_group;eligible_from;eligible_until;issue_card"
    return "\n".join([header, *rows, ""]).encode()


async def test_csv_stray_quote_rejects_one_line_and_keeps_the_others(desk: Desk) -> None:
    rng = random.Random(46)
    today = localtime.today()
    start, end = (today - timedelta(days=1)).isoformat(), (today + timedelta(days=300)).isoformat()

    def row(first: str, born: date) -> str:
        number = national_number(rng, born)
        return f"{first};Peeters;{born.isoformat()};{number};poverty;{start};{end};nee"

    lines = [row(f"P{i}", date(1980 + i, 1, 2)) for i in range(8)]
    lines[5] = lines[5].replace(";Peeters;", ';"De Smet;')  # line 7: the quote is never closed
    response = await desk.referrer.post(
        "/people/import", content=_csv(*lines), headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert [r["line"] for r in report["imported"]] == [2, 3, 4, 5, 6, 8, 9]
    [rejected] = report["rejected"]
    assert rejected["line"] == 7
    assert rejected["errors"][0]["field"] == "csv"
    assert rejected["errors"][0]["reason"].startswith("unbalanced quote")


async def test_csv_oversized_cell_is_reported_not_a_500(desk: Desk) -> None:
    rng = random.Random(47)
    today = localtime.today()
    start, end = (today - timedelta(days=1)).isoformat(), (today + timedelta(days=300)).isoformat()
    good = (
        f"An;Peeters;1980-01-02;{national_number(rng, date(1980, 1, 2))};poverty;{start};{end};nee"
    )
    huge = "x" * (csv.field_size_limit() + 10)
    response = await desk.referrer.post(
        "/people/import",
        content=_csv(f"Bart;{huge};1980-01-02;x;poverty;{start};{end};nee", good),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert [r["line"] for r in report["imported"]] == [3]
    assert report["rejected"] == [
        {
            "line": 2,
            "errors": [
                {
                    "field": "csv",
                    "reason": f"a cell is longer than {csv.field_size_limit()} characters",
                }
            ],
        }
    ]
    header_too_long = await desk.referrer.post(
        "/people/import",
        content=b"first_name;" + huge.encode() + b"\n",
        headers={"Content-Type": "text/csv"},
    )
    assert header_too_long.status_code == 422
    assert header_too_long.json()["detail"].startswith("csv: line 1 (the header): a cell is longer")
