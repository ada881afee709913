"""Event timestamps must carry a UTC offset: a naive one is refused, saying so."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from shared.checkin_signature import format_timestamp
from shared.events.base import EARLIEST, LATEST
from shared.events.claims import ClaimRejected, RejectionReason
from shared.localtime import business_day

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


@pytest.mark.parametrize(
    "at",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1899-12-31T23:59:59.999Z"],
)
def test_an_instant_no_one_can_compute_with_is_refused_by_the_schema(at: str) -> None:
    """It once raised OverflowError in the signature check (and the local day) instead: a
    handler error, after its whole batch was applied again one event at a time."""
    with pytest.raises(ValidationError) as refused:
        ClaimRejected.model_validate_json(_rejected(at))
    [error] = refused.value.errors()
    assert error["loc"] == ("occurred_at",)
    assert error["type"] in ("greater_than_equal", "less_than_equal")


@pytest.mark.parametrize("at", [EARLIEST, LATEST, datetime(1970, 1, 1, tzinfo=UTC)])
def test_every_instant_within_the_bounds_can_be_signed_and_given_a_local_day(
    at: datetime,
) -> None:
    # 1970: a kiosk that booted without a clock; its check-in is judged (out of window).
    event = ClaimRejected.model_validate_json(_rejected(at.isoformat()))
    assert format_timestamp(event.occurred_at).startswith(f"{at.year:04d}-")
    assert business_day(event.occurred_at + timedelta(days=366)) > business_day(event.occurred_at)
