"""Decoding validates a body in one pass with pydantic's JSON parser; only a refused body
goes through the stdlib parser, which decides the reason. Whatever the bytes, the result
must be the one the stdlib path alone gives: the same event, or the same dead letter."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import topics
from shared.consumer import Incoming, _refused_body, decode
from shared.deadletter import DeadLetter, DeadLetterReason, SourceRecord
from shared.envelope import parse_headers
from shared.events.checkins import Activity, ActivityCategory, CheckInRecorded
from vtp.device.signer import DeviceIdentity

TOPICS = {t.name: t for t in topics.ALL_TOPICS}
CHECKIN = topics.CHECKIN_RECORDED
IDENTITY = DeviceIdentity(uuid.uuid4(), uuid.uuid4(), Ed25519PrivateKey.generate())
ENVELOPE, ORIGINAL = IDENTITY.check_in(
    card_number="6299001234568",
    activity=Activity(id="a", category=ActivityCategory.SPORT, name="A"),
    price_cents=700,
    occurred_at=datetime(2026, 5, 1, tzinfo=UTC),
)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


def _junk_checkin(field: str, junk: Any, encoding: str) -> bytes:
    body = json.loads(ORIGINAL.model_dump_json())
    body[field] = junk
    return json.dumps(body).encode(encoding)


bodies = (
    st.binary(max_size=600)
    | json_values.map(lambda v: json.dumps(v).encode())
    | st.builds(
        _junk_checkin,
        st.sampled_from(list(CheckInRecorded.model_fields)),
        json_values,
        st.sampled_from(["utf-8", "utf-8", "utf-16"]),
    )
    | st.just(ORIGINAL.model_dump_json().encode("utf-16"))
    | st.just(ORIGINAL.model_dump_json().encode())
)


def _as_comparable(result: Incoming[Any] | DeadLetter) -> tuple[str, Any]:
    if isinstance(result, DeadLetter):
        return result.reason.value, result.detail
    return "event", result.payload


@FAST
@given(body=bodies)
def test_the_one_pass_decode_agrees_with_the_stdlib_path(body: bytes) -> None:
    record = SourceRecord(CHECKIN.name, 0, 0, b"k", body, ENVELOPE.headers())
    envelope = parse_headers(record.headers)

    def dead(reason: DeadLetterReason, detail: str) -> DeadLetter:
        return DeadLetter(record, reason, detail)

    expected = _refused_body(record, CHECKIN, envelope, dead)
    assert _as_comparable(decode(record, TOPICS)) == _as_comparable(expected)


def test_a_card_number_in_digits_other_than_ascii_is_a_schema_violation() -> None:
    # docs/device-protocol.md: 13 ASCII digits. A regular expression's \d also takes
    # Arabic-Indic and other digits, which no card number has.
    body = _junk_checkin("card_number", "٦٢٩٩٠٠١٢٣٤٥٦٨", "utf-8")
    result = decode(SourceRecord(CHECKIN.name, 0, 0, b"k", body, ENVELOPE.headers()), TOPICS)
    assert isinstance(result, DeadLetter)
    assert result.reason is DeadLetterReason.SCHEMA_VIOLATION
    assert "card_number" in result.detail
