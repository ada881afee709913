"""Event timestamps must carry a UTC offset: a naive one is refused, saying so."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from shared.events.claims import ClaimRejected, RejectionReason

AT = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)


def _rejected(occurred_at: object) -> str:
    body = json.loads(
        ClaimRejected(
            claim_id=uuid.uuid4(),
            checkin_id=uuid.uuid4(),
            card_id=None,
            holder_id=None,
            provider_id=uuid.uuid4(),
            activity_id="a",
            reason=RejectionReason.UNKNOWN_CARD,
            detail="no card with this number",
            occurred_at=AT,
            decided_at=AT,
        ).model_dump_json()
    )
    body["occurred_at"] = occurred_at
    return json.dumps(body)


def test_a_timestamp_without_offset_is_refused_with_the_reason() -> None:
    with pytest.raises(ValidationError) as refused:
        ClaimRejected.model_validate_json(_rejected("2026-05-01T09:30:00"))
    [error] = refused.value.errors()
    assert error["loc"] == ("occurred_at",)
    assert error["type"] == "timezone_aware"


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(hours=2), timedelta(hours=-5)])
def test_any_offset_is_taken_and_keeps_the_instant(offset: timedelta) -> None:
    at = AT.astimezone(timezone(offset))
    event = ClaimRejected.model_validate_json(_rejected(at.isoformat()))
    assert event.occurred_at == AT
    assert event.occurred_at.utcoffset() == offset
