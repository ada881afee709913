"""A check-in whose device claims does not know yet is parked, not dead-lettered: it has no
outcome yet, and one once its device's registration comes (services/claims/parking.py).
Any other authentication failure is judged as before."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.claims import parking
from services.claims.authentication import KnownDevice
from services.claims.checkins import CheckInHandler, _Context, _Writes
from services.claims.decisions import ProviderView
from services.claims.eligibility import Grant
from services.claims.policy import load_policy
from shared import topics
from shared.checkin_signature import public_key_b64
from shared.consumer import Incoming, decode
from shared.deadletter import SourceRecord
from shared.events.cards import ProviderMode
from shared.events.checkins import (
    Activity,
    ActivityCategory,
    CancellationReason,
    CheckInCancelled,
)
from shared.outbox import headers_from_json, headers_to_json
from vtp.device.signer import DeviceIdentity

NOW = datetime(2025, 6, 20, 12, tzinfo=UTC)
POLICY = Path(__file__).parents[3] / "services" / "claims" / "policies" / "default.toml"
CARD = "6299001234568"
KEY = Ed25519PrivateKey.generate()
DEVICE = DeviceIdentity(uuid.uuid4(), uuid.uuid4(), KEY)


def _incoming(extra_headers: list[tuple[str, bytes]] | None = None) -> Incoming[Any]:
    envelope, checkin = DEVICE.check_in(
        card_number=CARD,
        activity=Activity(id="a1", category=ActivityCategory.CULTURE, name="Theater"),
        price_cents=2000,
        occurred_at=NOW - timedelta(minutes=1),
    )
    record = SourceRecord(
        topics.CHECKIN_RECORDED.name,
        3,
        7,
        topics.CHECKIN_RECORDED.key_of(checkin),
        checkin.model_dump_json().encode(),
        envelope.headers() + (extra_headers or []),
    )
    return Incoming(envelope, checkin, record)


def _judged(devices: dict[uuid.UUID, KnownDevice], signature_valid: bool = True) -> _Writes:
    incoming = _incoming()
    holder = uuid.uuid4()
    row = {"card_id": uuid.uuid4(), "holder_id": holder, "card_number": CARD, "resident": True}
    ctx = _Context(
        devices=devices,
        cards={CARD: row},  # type: ignore[dict-item]  # a Record's reads, as a dict
        history={},
        providers={
            DEVICE.provider_id: [
                (datetime(2025, 1, 1, tzinfo=UTC), ProviderView(True, ProviderMode.REFUND))
            ]
        },
        decided=set(),
        seen_nonces=set(),
        cancelled={},
        used={},
        grants={holder: [Grant("poverty", date(2025, 1, 1), date(2025, 12, 31), 0)]},
    )
    writes = _Writes()
    handler = CheckInHandler(load_policy(POLICY), clock=lambda: NOW)
    handler._judge(incoming, signature_valid, ctx, writes, NOW)
    return writes


def _device(**changes: Any) -> dict[uuid.UUID, KnownDevice]:
    known = KnownDevice(DEVICE.device_id, DEVICE.provider_id, public_key_b64(KEY), None)
    values = {**vars(known), **changes}
    return {DEVICE.device_id: KnownDevice(**values)}


def test_a_checkin_from_a_device_not_known_yet_is_parked_without_any_outcome() -> None:
    writes = _judged(devices={})  # its DeviceRegistered has not been applied yet
    assert writes.claims == [] and writes.events == [] and writes.transfers == []
    assert writes.dead == [] and writes.unauthenticated == []
    assert writes.nonces == []  # the nonce is still free for when it is judged
    # With when it reached us (no broker time here: the handler's clock), which its copy
    # will be judged against.
    assert [(i.payload.device_id, at) for i, at in writes.parked] == [(DEVICE.device_id, NOW)]


@pytest.mark.parametrize(
    ("devices", "signature_valid", "reason"),
    [
        (_device(provider_id=uuid.uuid4()), True, "unknown_device"),
        (_device(revoked_at=NOW - timedelta(days=1)), True, "device_revoked"),
        (_device(), False, "bad_signature"),
    ],
    ids=["another provider's device", "revoked device", "bad signature"],
)
def test_any_other_authentication_failure_is_dead_lettered_as_before(
    devices: dict[uuid.UUID, KnownDevice], signature_valid: bool, reason: str
) -> None:
    writes = _judged(devices, signature_valid)
    assert writes.parked == []
    assert [d.reason.value for d in writes.dead] == [reason]
    assert writes.claims == []


def test_a_known_device_is_judged_as_before() -> None:
    writes = _judged(_device())
    assert writes.parked == [] and writes.dead == []
    assert [claim[13] for claim in writes.claims] == ["approved"]


def test_the_copy_put_back_is_the_check_in_as_it_came_under_a_derived_id() -> None:
    original = _incoming(extra_headers=[("x-odd", "café".encode())])
    parked = parking._Parked.of(original, NOW)
    copy = parking._copy(parked.event_id, parked.key, parked.headers, parked.payload)
    new_id = parking.copy_id(original.envelope.id)
    assert new_id != original.envelope.id
    assert new_id == parking.copy_id(original.envelope.id)  # released twice: one outbox row
    assert copy.event_id == str(new_id) and copy.retain
    assert copy.topic == topics.CHECKIN_RECORDED.name
    assert (copy.key, copy.payload) == (original.source.key, original.source.value)
    # As the check-in consumer will read it: the same check-in and correlation, caused by
    # the original event.
    record = SourceRecord(copy.topic, 0, 1, copy.key, copy.payload, copy.headers)
    decoded = decode(record, {topics.CHECKIN_RECORDED.name: topics.CHECKIN_RECORDED})
    assert isinstance(decoded, Incoming)
    assert decoded.payload == original.payload
    assert decoded.envelope.id == new_id
    assert decoded.envelope.causation_id == str(original.envelope.id)
    assert decoded.correlation_id == original.correlation_id
    assert ("x-odd", "café".encode()) in copy.headers


def test_stored_headers_come_back_byte_for_byte() -> None:
    headers = [("ce_id", b"x"), ("odd", bytes(range(256)))]
    stored = headers_to_json(headers).encode()  # as parking stores them
    assert headers_from_json(stored.decode()) == headers


def test_only_a_record_that_names_itself_a_copy_is_looked_for_under_its_body() -> None:
    original = _incoming()
    parked = parking._Parked.of(original, NOW)
    copy = parking._copy(parked.event_id, parked.key, parked.headers, parked.payload)
    topic = {topics.CHECKIN_RECORDED.name: topics.CHECKIN_RECORDED}

    def received(headers: list[tuple[str, bytes]], body: bytes) -> Incoming[Any]:
        decoded = decode(SourceRecord(copy.topic, 0, 1, copy.key, body, headers), topic)
        assert isinstance(decoded, Incoming)
        return decoded

    key = parking.copy_key(received(copy.headers, copy.payload))
    assert key is not None
    assert parking.copy_key(original) is None  # no causation_id: not looked for
    # Caused by something else than the event its id is derived from: not a copy.
    other = [(k, str(uuid.uuid4()).encode() if k == "causation_id" else v) for k, v in copy.headers]
    assert parking.copy_key(received(other, copy.payload)) is None
    odd = [(k, b"not-a-uuid" if k == "causation_id" else v) for k, v in copy.headers]
    assert parking.copy_key(received(odd, copy.payload)) is None
    # The copy's headers on another body: another key, which nothing released.
    body = copy.payload.replace(b'"price_cents":2000', b'"price_cents":2001')
    assert body != copy.payload
    assert parking.copy_key(received(copy.headers, body)) not in (None, key)


def test_a_parked_cancellation_goes_back_to_the_cancellation_topic_under_an_id_of_its_own() -> None:
    envelope, cancel = DEVICE.signed_cancellation(
        CheckInCancelled(
            checkin_id=uuid.uuid4(),
            device_id=DEVICE.device_id,
            provider_id=DEVICE.provider_id,
            card_number=CARD,
            reason=CancellationReason.ACTIVITY_CANCELLED,
            cancelled_at=NOW,
            signature="-",
        )
    )
    topic = topics.CHECKIN_CANCELLED
    source = SourceRecord(
        topic.name,
        1,
        2,
        topic.key_of(cancel),
        cancel.model_dump_json().encode(),
        envelope.headers(),
    )
    original = Incoming(envelope, cancel, source)
    parked = parking._Parked.cancellation(original, NOW)
    assert (parked.kind, parked.checkin_id, parked.awaiting_card) == (
        parking.CANCELLATION,
        cancel.checkin_id,
        None,
    )
    copy = parking._copy(parked.event_id, parked.key, parked.headers, parked.payload, parked.kind)
    assert copy.topic == topic.name and copy.retain
    assert (copy.key, copy.payload) == (source.key, source.value)
    # Apart from a check-in's copy: one reusing its check-in's event id gets another id.
    new_id = parking.copy_id(envelope.id, parking.CANCELLATION)
    assert copy.event_id == str(new_id) != str(parking.copy_id(envelope.id))
    decoded = decode(
        SourceRecord(copy.topic, 0, 1, copy.key, copy.payload, copy.headers), {topic.name: topic}
    )
    assert isinstance(decoded, Incoming)
    assert decoded.payload == cancel and decoded.envelope.id == new_id
    # Looked for as a cancellation's copy only.
    assert parking.copy_key(decoded, parking.CANCELLATION) is not None
    assert parking.copy_key(decoded) is None
