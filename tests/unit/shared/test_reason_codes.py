"""Card status changes, device revocations, check-in cancellations and claim reversals carry
a reason code, never what a person typed at the desk or a provider at the till. An event of
the old shape (free text) is a schema violation: every consumer (claims, notifications: the
same decode) dead-letters it with a detail that names the field and the codes, and never
repeats the text."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import pytest

from shared import topics
from shared.consumer import Incoming, decode
from shared.deadletter import DeadLetter, DeadLetterReason, SourceRecord
from shared.envelope import new_envelope
from shared.events.cards import (
    CardStatusChanged,
    CardStatusReason,
    DeviceRevocationReason,
    DeviceRevoked,
)
from shared.events.checkins import CancellationReason, CheckInCancelled
from shared.events.claims import ClaimReversed, ReversalReason

TOPICS = {t.name: t for t in topics.ALL_TOPICS}
TYPED = "overleden, zie dossier bij haar zus in de Kerkstraat 4"
TYPED_AT_THE_TILL = "verkeerde kaart gescand bij Jan, klant was ziek"


def _status_body(reason: str) -> dict[str, Any]:
    return {
        "card_id": str(uuid.uuid4()),
        "card_number": "6299001234568",
        "holder_id": str(uuid.uuid4()),
        "status": "revoked",
        "reason": reason,
        "effective_at": "2026-05-01T10:00:00+02:00",
    }


def _revoked_body(reason: str) -> dict[str, Any]:
    return {
        "device_id": str(uuid.uuid4()),
        "provider_id": str(uuid.uuid4()),
        "revoked_at": "2026-05-01T10:00:00+02:00",
        "reason": reason,
    }


def _cancelled_body(reason: str) -> dict[str, Any]:
    return {
        "checkin_id": str(uuid.uuid4()),
        "device_id": str(uuid.uuid4()),
        "provider_id": str(uuid.uuid4()),
        "card_number": "6299001234568",
        "reason": reason,
        "cancelled_at": "2026-05-01T10:00:00+02:00",
        "signature": "c2lnbmF0dXJl",
    }


def _reversed_body(reason: str) -> dict[str, Any]:
    return {
        "claim_id": str(uuid.uuid4()),
        "checkin_id": str(uuid.uuid4()),
        "holder_id": str(uuid.uuid4()),
        "provider_id": str(uuid.uuid4()),
        "amount_cents": 750,
        "reason": reason,
        "reversed_at": "2026-05-01T10:00:00+02:00",
        "payee_kind": "card_holder",
    }


def _decoded(topic: topics.Topic, body: dict[str, Any]) -> Incoming[Any] | DeadLetter:
    envelope = new_envelope(type=topic.event_type, source="/vrijetijdspas/cards")
    record = SourceRecord(topic.name, 0, 0, b"k", json.dumps(body).encode(), envelope.headers())
    return decode(record, TOPICS)


@pytest.mark.parametrize(
    ("topic", "body", "codes"),
    [
        (topics.CARD_STATUS_CHANGED, _status_body(TYPED), CardStatusReason),
        (topics.DEVICE_REVOKED, _revoked_body(TYPED), DeviceRevocationReason),
        (topics.CHECKIN_CANCELLED, _cancelled_body(TYPED_AT_THE_TILL), CancellationReason),
        (topics.CLAIM_REVERSED, _reversed_body(TYPED_AT_THE_TILL), ReversalReason),
    ],
)
def test_an_old_free_text_reason_is_dead_lettered_without_repeating_it(
    topic: topics.Topic, body: dict[str, Any], codes: type[CardStatusReason]
) -> None:
    result = _decoded(topic, body)
    assert isinstance(result, DeadLetter)
    assert result.reason is DeadLetterReason.SCHEMA_VIOLATION
    assert result.detail.startswith("reason: Input should be ")
    assert all(f"'{code.value}'" in result.detail for code in codes)
    assert body["reason"] not in result.detail


# Each topic with a reason code: its body builder and its event type.
CODED: list[tuple[topics.Topic, Callable[[str], dict[str, Any]], type[Any], type[StrEnum]]] = [
    (topics.CARD_STATUS_CHANGED, _status_body, CardStatusChanged, CardStatusReason),
    (topics.DEVICE_REVOKED, _revoked_body, DeviceRevoked, DeviceRevocationReason),
    (topics.CHECKIN_CANCELLED, _cancelled_body, CheckInCancelled, CancellationReason),
    (topics.CLAIM_REVERSED, _reversed_body, ClaimReversed, ReversalReason),
]


@pytest.mark.parametrize(
    ("topic", "body", "event", "code"),
    [(topic, body, event, code) for topic, body, event, codes in CODED for code in codes],
    ids=lambda v: v.value if isinstance(v, StrEnum) else None,
)
def test_every_reason_code_travels(
    topic: topics.Topic,
    body: Callable[[str], dict[str, Any]],
    event: type[Any],
    code: StrEnum,
) -> None:
    result = _decoded(topic, body(code.value))
    assert isinstance(result, Incoming) and isinstance(result.payload, event)
    assert result.payload.reason is code


def test_every_cancellation_reason_is_a_reversal_reason() -> None:
    """Claims reverses a claim with its cancellation's code: each one must exist there."""
    assert {c.value for c in CancellationReason} <= {r.value for r in ReversalReason}
