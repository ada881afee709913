"""What the cards service tells others when a person's grants change: every grant the
person holds (claims judges a late check-in by the grant of its own day), and in the
top-level fields the one that reaches furthest, as before."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared import localtime
from tests.integration.cards.conftest import Desk, grant_body, new_holder

TOPIC = "cards.eligibility-changed.v1"


def _grant(body: dict[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in ("target_group", "eligible_from", "eligible_until", "grace_days")}


async def test_every_change_carries_all_grants(desk: Desk) -> None:
    today = localtime.today()
    first = grant_body()
    ids = await new_holder(desk.referrer, 21)
    person = f"/people/{ids['person_id']}"
    # An early renewal as a senior, starting the day after the first grant ends.
    renewal = grant_body(
        target_group="senior",
        eligible_from=(today + timedelta(days=366)).isoformat(),
        eligible_until=(today + timedelta(days=730)).isoformat(),
        grace_days=10,
    )
    granted = await desk.referrer.post(f"{person}/eligibility", json=renewal)
    assert granted.status_code == 201, granted.text
    longer = (today + timedelta(days=400)).isoformat()
    extended = await desk.referrer.post(
        f"{person}/eligibility/{ids['eligibility_id']}/extension",
        json={"eligible_until": longer, "reason": "verlengd"},
    )
    assert extended.status_code == 200, extended.text

    events = await desk.outbox(TOPIC)
    assert [e["grants"] for e in events] == [
        [_grant(first)],
        [_grant(first), _grant(renewal)],
        [{**_grant(first), "eligible_until": longer}, _grant(renewal)],
    ]
    assert {e["holder_id"] for e in events} == {ids["person_id"]}
    # Older readers (notifications) still get the grant that reaches furthest.
    assert [(e["target_group"], e["eligible_until"]) for e in events] == [
        ("poverty", first["eligible_until"]),
        ("senior", renewal["eligible_until"]),
        ("senior", renewal["eligible_until"]),
    ]
