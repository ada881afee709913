"""EligibilityChanged grew a list of all the holder's grants: events from older producers,
without it, must still be read, and the list must survive the trip through JSON."""

from __future__ import annotations

import json
import uuid
from datetime import date

import pytest
from pydantic import ValidationError

from shared import topics
from shared.events.cards import EligibilityChanged, EligibilityGrant

OLD_BODY = {
    "holder_id": str(uuid.uuid4()),
    "target_group": "senior",
    "eligible_from": "2025-01-01",
    "eligible_until": "2025-12-31",
    "grace_days": 30,
    "referrer_org_id": str(uuid.uuid4()),
    "changed_at": "2024-12-15T10:00:00+01:00",
}


def test_an_event_without_grants_still_validates() -> None:
    event = topics.ELIGIBILITY_CHANGED.payload.model_validate_json(json.dumps(OLD_BODY))
    assert isinstance(event, EligibilityChanged)
    assert event.grants == ()
    assert event.eligible_until == date(2025, 12, 31)


def test_the_grants_travel_through_json() -> None:
    grants = [
        {
            "target_group": "poverty",
            "eligible_from": "2024-01-01",
            "eligible_until": "2024-12-31",
            "grace_days": 0,
        },
        {
            "target_group": "senior",
            "eligible_from": "2025-01-01",
            "eligible_until": "2025-12-31",
            "grace_days": 30,
        },
    ]
    event = EligibilityChanged.model_validate_json(json.dumps({**OLD_BODY, "grants": grants}))
    assert event.grants == (
        EligibilityGrant(
            target_group="poverty",
            eligible_from=date(2024, 1, 1),
            eligible_until=date(2024, 12, 31),
            grace_days=0,
        ),
        EligibilityGrant(
            target_group="senior",
            eligible_from=date(2025, 1, 1),
            eligible_until=date(2025, 12, 31),
            grace_days=30,
        ),
    )
    assert EligibilityChanged.model_validate_json(event.model_dump_json()) == event


def test_a_grant_is_as_strict_as_the_event() -> None:
    bad = {
        "target_group": "poverty",
        "eligible_from": "2024-01-01",
        "eligible_until": "2024-12-31",
        "grace_days": 0,
        "name": "Jan",
    }
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        EligibilityChanged.model_validate({**OLD_BODY, "grants": [bad]})
