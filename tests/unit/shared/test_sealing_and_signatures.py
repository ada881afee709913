from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from shared.checkin_signature import (
    canonical_checkin,
    format_timestamp,
    public_key_b64,
    sign,
    verify,
)
from shared.events.checkins import Activity, ActivityCategory, CheckInRecorded
from shared.sealing import SealError, generate_keypair, seal, unseal


def test_sealed_value_opens_only_with_the_recipients_key() -> None:
    private, public = generate_keypair()
    other_private, _ = generate_keypair()
    sealed = seal(public, {"iban": "BE68539007547034", "name": "An Peeters"})
    assert "BE68" not in sealed and "Peeters" not in sealed
    assert unseal(private, sealed) == {"iban": "BE68539007547034", "name": "An Peeters"}
    with pytest.raises(SealError):
        unseal(other_private, sealed)


@given(st.text(max_size=200))
def test_garbage_never_opens(text: str) -> None:
    private, _ = generate_keypair()
    with pytest.raises(SealError):
        unseal(private, text)


def _checkin(**changes: object) -> CheckInRecorded:
    base = CheckInRecorded(
        checkin_id=uuid.UUID("0190e1c2-7d3e-7abc-8def-0123456789ab"),
        device_id=uuid.UUID("0190e1c2-7d3e-7abc-8def-000000000001"),
        provider_id=uuid.UUID("0190e1c2-7d3e-7abc-8def-000000000002"),
        activity=Activity(id="zwembad", category=ActivityCategory.SPORT, name="Zwembad"),
        card_number="6299123456782",
        price_cents=350,
        occurred_at=datetime(2026, 11, 27, 9, 30, 0, 123456, tzinfo=UTC),
        counter=7,
        nonce="0" * 32,
        signature="-",
    )
    return base.model_copy(update=changes)


def test_timestamps_are_signed_in_utc_milliseconds() -> None:
    assert (
        format_timestamp(datetime(2026, 11, 27, 9, 30, 0, 123456, tzinfo=UTC))
        == "2026-11-27T09:30:00.123Z"
    )


def test_a_signature_covers_every_field_that_moves_money() -> None:
    key = Ed25519PrivateKey.generate()
    checkin = _checkin()
    signature = sign(key, canonical_checkin(checkin))
    public = public_key_b64(key)
    assert verify(public, canonical_checkin(checkin), signature)
    for change in (
        {"price_cents": 3500},
        {"card_number": "6299123456790"},
        {"counter": 8},
        {"nonce": "1" * 32},
    ):
        assert not verify(public, canonical_checkin(_checkin(**change)), signature)


@given(st.text(max_size=120), st.text(max_size=120))
def test_malformed_keys_and_signatures_are_simply_invalid(key: str, signature: str) -> None:
    assert verify(key, b"message", signature) is False
