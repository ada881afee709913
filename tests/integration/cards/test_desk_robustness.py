"""The desk keeps working with what referrers really do: overlapping grants with different
grace periods, lists imported by the program administrator, a line that fails for a reason
nobody foresaw, text pasted with control characters in it."""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

import pytest

from services.cards.desk import imports, people
from shared import localtime
from tests.integration.cards.conftest import Desk, grant_body, person_body
from vtp.demo.municipality import national_number

pytestmark = pytest.mark.integration


async def test_a_card_lives_as_long_as_the_grant_that_reaches_furthest_grace_included(
    desk: Desk,
) -> None:
    today = localtime.today()
    person = (await desk.referrer.post("/people", json=person_body(61))).json()["id"]
    # A: ended 20 days ago, with 90 grace days (valid for 70 more days).
    # B: ends later than A (5 days ago) but without grace: it alone would have ended.
    for start, end, grace in ((400, 20, 90), (30, 5, 0)):
        granted = await desk.referrer.post(
            f"/people/{person}/eligibility",
            json=grant_body(
                eligible_from=(today - timedelta(days=start)).isoformat(),
                eligible_until=(today - timedelta(days=end)).isoformat(),
                grace_days=grace,
            ),
        )
        assert granted.status_code == 201, granted.text

    issued = await desk.referrer.post(f"/people/{person}/cards")
    assert issued.status_code == 201, issued.text
    job = await desk.admin.post("/jobs/expiry")
    assert job.status_code == 200, job.text
    card = await desk.referrer.get(f"/cards/{issued.json()['card_id']}")
    assert card.json()["status"] == "active"


def _csv(header: str, *rows: str) -> bytes:
    return "\n".join([header, *rows, ""]).encode()


def _rows(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    today = localtime.today()
    start, end = (today - timedelta(days=1)).isoformat(), (today + timedelta(days=300)).isoformat()
    return [
        f"P{i};Peeters;{date(1980 + i, 1, 2)};{national_number(rng, date(1980 + i, 1, 2))};"
        f"poverty;{start};{end};nee"
        for i in range(count)
    ]


HEADER = (
    "first_name;last_name;date_of_birth;national_number;target_group;eligible_from;"
    "eligible_until;issue_card"
)


async def test_the_program_administrator_imports_a_list_for_a_named_organisation(
    desk: Desk,
) -> None:
    rows = [f"{row};{desk.org_id}" for row in _rows(62, 2)]
    response = await desk.admin.post(
        "/people/import",
        content=_csv(HEADER + ";referrer_org_id", *rows),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["imported_count"] == 2, response.json()["rejected"]
    # The people are followed by that organisation: its referrer sees them.
    person = response.json()["imported"][0]["person_id"]
    assert (await desk.referrer.get(f"/people/{person}")).status_code == 200


async def test_a_line_that_fails_unexpectedly_is_reported_and_the_next_lines_imported(
    desk: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    register = people.register_person

    async def failing_for_p1(unit: Any, person: Any, today: date) -> Any:
        if person.first_name == "P1":
            raise RuntimeError("something nobody foresaw")
        return await register(unit, person, today)

    monkeypatch.setattr(imports, "register_person", failing_for_p1)
    response = await desk.referrer.post(
        "/people/import", content=_csv(HEADER, *_rows(63, 3)), headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert [r["line"] for r in report["imported"]] == [2, 4]
    [rejected] = report["rejected"]
    assert rejected["line"] == 3
    assert "import this line again" in rejected["errors"][0]["reason"]


async def test_a_nul_in_a_name_is_refused_naming_the_field(desk: Desk) -> None:
    response = await desk.referrer.post("/people", json=person_body(64, last_name="Pee\x00ters"))
    assert response.status_code == 422, response.text
    assert "last_name" in response.text and "control character" in response.text
