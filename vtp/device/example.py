"""The worked example of docs/device-protocol.md, computed from fixed inputs.

A unit test compares every value shown in the document with what this module computes, so
the document cannot drift from the code. Never use this key for anything but the example.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.checkin_signature import canonical_cancellation, canonical_checkin, public_key_b64
from shared.events.checkins import (
    Activity,
    ActivityCategory,
    CancellationReason,
    CheckInCancelled,
    CheckInRecorded,
)
from vtp.device.signer import DeviceIdentity

SEED = bytes(range(32))  # 00 01 02 … 1f: a test key, public on purpose
DEVICE_ID = uuid.UUID("0190a3c4-5b6d-7e8f-9a0b-1c2d3e4f5a6b")
PROVIDER_ID = uuid.UUID("0190a3c4-0000-7000-8000-000000000001")
CHECKIN_ID = uuid.UUID("0190a3c5-1234-7abc-8def-0123456789ab")
ACTIVITY = Activity(
    id="cc-zwaneberg-2026-05", category=ActivityCategory.CULTURE, name="Voorstelling"
)
CARD_NUMBER = "6299001234568"
PRICE_CENTS = 1250
OCCURRED_AT = datetime(2026, 5, 1, 14, 30, 0, 250_000, tzinfo=UTC)
COUNTER = 42
NONCE = "00112233445566778899aabbccddeeff"
# The same check-in cancelled by the same device (section 9).
CANCEL_REASON = CancellationReason.ACTIVITY_CANCELLED
CANCELLED_AT = datetime(2026, 5, 2, 9, 15, 0, 500_000, tzinfo=UTC)


@dataclass(frozen=True)
class WorkedExample:
    seed_hex: str
    private_key_b64: str
    public_key_b64: str
    canonical: bytes
    signature_b64: str
    body: bytes
    cancel_canonical: bytes
    cancel_signature_b64: str
    cancel_body: bytes


def worked_example() -> WorkedExample:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    identity = DeviceIdentity(DEVICE_ID, PROVIDER_ID, key, key_id=1)  # a first registration
    _, checkin = identity.check_in(
        card_number=CARD_NUMBER,
        activity=ACTIVITY,
        price_cents=PRICE_CENTS,
        occurred_at=OCCURRED_AT,
        counter=COUNTER,
        nonce=NONCE,
        checkin_id=CHECKIN_ID,
    )
    unsigned: CheckInRecorded = checkin.model_copy(update={"signature": "-"})
    _, cancellation = identity.cancellation(
        checkin_id=CHECKIN_ID,
        card_number=CARD_NUMBER,
        reason=CANCEL_REASON,
        cancelled_at=CANCELLED_AT,
    )
    unsigned_cancel: CheckInCancelled = cancellation.model_copy(update={"signature": "-"})
    return WorkedExample(
        seed_hex=SEED.hex(),
        private_key_b64=base64.b64encode(SEED).decode(),
        public_key_b64=public_key_b64(key),
        canonical=canonical_checkin(unsigned),
        signature_b64=checkin.signature,
        body=checkin.model_dump_json().encode(),
        cancel_canonical=canonical_cancellation(unsigned_cancel),
        cancel_signature_b64=cancellation.signature,
        cancel_body=cancellation.model_dump_json().encode(),
    )


if __name__ == "__main__":
    example = worked_example()
    for name, value in example.__dict__.items():
        print(f"{name}: {value.decode() if isinstance(value, bytes) else value}\n")
