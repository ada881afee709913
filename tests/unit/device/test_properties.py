"""Random bytes and headers never crash the parser or the signature check; every refusal
is a dead letter with a reason, and only an untouched signed check-in authenticates."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.claims.authentication import KnownDevice, authenticate
from shared import topics
from shared.checkin_signature import canonical_checkin, public_key_b64, verify
from shared.consumer import Incoming, decode
from shared.deadletter import DeadLetter, DeadLetterReason, SourceRecord
from shared.envelope import new_envelope
from shared.events.checkins import Activity, ActivityCategory, CheckInRecorded
from vtp.device.signer import DeviceIdentity

TOPICS = {t.name: t for t in topics.ALL_TOPICS}
CHECKIN = topics.CHECKIN_RECORDED
KEY = Ed25519PrivateKey.generate()
IDENTITY = DeviceIdentity(uuid.uuid4(), uuid.uuid4(), KEY)
DEVICE = KnownDevice(IDENTITY.device_id, IDENTITY.provider_id, public_key_b64(KEY), None)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

header_names = st.sampled_from(
    ["ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "ce_subject", "x", ""]
)
headers = st.lists(st.tuples(header_names, st.binary(max_size=80)), max_size=8)
topic_names = st.sampled_from([*TOPICS, "nope.v9"])


def _record(topic: str, value: bytes | None, hdrs: list[tuple[str, bytes]]) -> SourceRecord:
    return SourceRecord(topic, 0, 0, b"k", value, hdrs)


def _valid_headers() -> list[tuple[str, bytes]]:
    return new_envelope(type=CHECKIN.event_type, source="/t").headers()


def _signed(price_cents: int = 700) -> CheckInRecorded:
    _, checkin = IDENTITY.check_in(
        card_number="6299001234568",
        activity=Activity(id="a", category=ActivityCategory.SPORT, name="A"),
        price_cents=price_cents,
        occurred_at=datetime(2026, 5, 1, tzinfo=UTC),
    )
    return checkin


ORIGINAL = _signed()


@FAST
@given(topic=topic_names, value=st.none() | st.binary(max_size=2000), hdrs=headers)
def test_random_records_never_crash_the_parser(
    topic: str, value: bytes | None, hdrs: list[tuple[str, bytes]]
) -> None:
    result = decode(_record(topic, value, hdrs), TOPICS)
    assert isinstance(result, DeadLetter | Incoming)
    if isinstance(result, DeadLetter):
        assert result.reason in DeadLetterReason
        assert result.detail


@FAST
@given(value=st.binary(max_size=2000))
def test_random_bodies_with_a_valid_envelope_are_dead_lettered_never_raised(value: bytes) -> None:
    result = decode(_record(CHECKIN.name, value, _valid_headers()), TOPICS)
    assert isinstance(result, DeadLetter)
    assert result.reason in {DeadLetterReason.MALFORMED_JSON, DeadLetterReason.SCHEMA_VIOLATION}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=20,
)


@FAST
@given(field=st.sampled_from(list(CheckInRecorded.model_fields)), junk=json_values)
def test_a_check_in_with_any_field_replaced_by_junk_parses_or_is_a_schema_violation(
    field: str, junk: object
) -> None:
    body = json.loads(ORIGINAL.model_dump_json())
    body[field] = junk
    result = decode(_record(CHECKIN.name, json.dumps(body).encode(), _valid_headers()), TOPICS)
    if isinstance(result, DeadLetter):
        assert result.reason is DeadLetterReason.SCHEMA_VIOLATION
    else:
        # Junk that happens to fit the schema passes only if it left the signed bytes as
        # they were (e.g. a new activity name, which is a label and not signed).
        if authenticate(result.payload, DEVICE, nonce_already_used=False) is None:
            assert canonical_checkin(result.payload) == canonical_checkin(ORIGINAL)


@FAST
@given(
    size=st.integers(min_value=1, max_value=5000), limit=st.integers(min_value=0, max_value=4096)
)
def test_anything_above_the_size_limit_is_oversized_before_it_is_parsed(
    size: int, limit: int
) -> None:
    result = decode(_record(CHECKIN.name, b"{" * size, []), TOPICS, max_bytes=limit)
    if size > limit:
        assert isinstance(result, DeadLetter) and result.reason is DeadLetterReason.OVERSIZED
    else:
        assert isinstance(result, DeadLetter) and result.reason is not DeadLetterReason.OVERSIZED


@FAST
@given(
    # Without control characters (an envelope holding one is invalid whatever its type) nor
    # lone surrogates (excluded by default until a category is named; no header holds one).
    ce_type=st.text(st.characters(exclude_categories=["Cc", "Cs"]), min_size=1, max_size=60).filter(
        lambda t: t != CHECKIN.event_type
    )
)
def test_any_other_event_type_on_the_check_in_topic_is_an_unknown_version(ce_type: str) -> None:
    hdrs = new_envelope(type=ce_type, source="/t").headers()
    result = decode(_record(CHECKIN.name, _signed().model_dump_json().encode(), hdrs), TOPICS)
    assert isinstance(result, DeadLetter)
    assert result.reason is DeadLetterReason.UNKNOWN_VERSION


@FAST
@given(
    key=st.text(max_size=60) | st.just(DEVICE.public_key),
    message=st.binary(max_size=300),
    signature=st.text(max_size=120),
)
def test_random_keys_messages_and_signatures_never_crash_the_check(
    key: str, message: bytes, signature: str
) -> None:
    assert verify(key, message, signature) is False


signed_fields = st.sampled_from(
    [
        "checkin_id",
        "device_id",
        "provider_id",
        "card_number",
        "price_cents",
        "occurred_at",
        "counter",
        "nonce",
        "activity",
    ]
)


@FAST
@given(field=signed_fields, data=st.data())
def test_changing_any_signed_field_breaks_the_signature(field: str, data: st.DataObject) -> None:
    original = _signed()
    replacement: object = {
        "checkin_id": uuid.uuid4(),
        "device_id": uuid.uuid4(),
        "provider_id": uuid.uuid4(),
        "card_number": data.draw(
            st.from_regex(r"\A\d{13}\Z").filter(lambda n: n != original.card_number)
        ),
        "price_cents": data.draw(
            st.integers(0, 10_000_000).filter(lambda p: p != original.price_cents)
        ),
        "occurred_at": datetime(2026, 5, 1, 0, 0, 1, tzinfo=UTC),
        "counter": original.counter + data.draw(st.integers(1, 1000)),
        "nonce": data.draw(
            st.from_regex(r"\A[0-9a-f]{32}\Z").filter(lambda n: n != original.nonce)
        ),
        "activity": Activity(id="other", category=ActivityCategory.SPORT, name="A"),
    }[field]
    tampered = original.model_copy(update={field: replacement})
    device = DEVICE
    if field in {"device_id", "provider_id"}:
        device = KnownDevice(tampered.device_id, tampered.provider_id, DEVICE.public_key, None)
    failure = authenticate(tampered, device, nonce_already_used=False)
    assert failure is not None and failure.reason.value == "bad_signature"
    assert authenticate(original, DEVICE, nonce_already_used=False) is None
    assert verify(DEVICE.public_key, canonical_checkin(original), original.signature)
