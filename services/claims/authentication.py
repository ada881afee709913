"""Is this check-in really from a registered, non-revoked device, and seen for the first time?

Pure checks on what the database told us about the device; no I/O. A failure here means
the message cannot be trusted at all: it gets no claim of its own (so a forgery can never
take the check-in id of a genuine check-in) and goes to the dead-letter topic.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.checkin_signature import canonical_cancellation, canonical_checkin, verify
from shared.deadletter import DeadLetterReason
from shared.events.checkins import CheckInCancelled, CheckInRecorded
from shared.events.claims import RejectionReason


@dataclass(frozen=True)
class KnownDevice:
    device_id: uuid.UUID
    provider_id: uuid.UUID
    public_key: str
    revoked_at: datetime | None
    key_id: int = 1  # of `public_key`; 0 for a revocation that overtook the registration


@dataclass(frozen=True)
class ReplacedKey:
    """A key the device had before a rotation, and the moment the new one replaced it."""

    public_key: str
    superseded_at: datetime


def signed_before_rotation(
    checkin: CheckInRecorded, replaced: Sequence[ReplacedKey], arrived: datetime
) -> bool:
    """Whether a check-in whose signature does not match its device's current key was
    signed with a key replaced only after the check-in reached the broker (`arrived`): it
    was sent before the rotation, when that key was the device's. (A device re-signs with
    its new key only what it has not sent yet.) A key replaced because it leaked is
    revoked with its device, not rotated: nothing signed with it counts then."""
    return _signed_with_replaced_key(
        canonical_checkin(checkin), checkin.signature, replaced, arrived
    )


def _signed_with_replaced_key(
    message: bytes, signature: str, replaced: Sequence[ReplacedKey], arrived: datetime
) -> bool:
    return any(
        arrived < key.superseded_at and verify(key.public_key, message, signature)
        for key in replaced
    )


def awaits_newer_key(signed: CheckInRecorded | CheckInCancelled, device: KnownDevice) -> bool:
    """Whether a check-in (or a cancellation) whose signature no key of its device matches
    says it was signed with a key newer than the device's we know: its registration is still
    on its way (a rotation; another topic). It waits for it rather than being refused as
    bad_signature."""
    return signed.key_id is not None and signed.key_id > device.key_id


@dataclass(frozen=True)
class AuthenticationFailure:
    reason: RejectionReason
    detail: str


def authenticate(
    checkin: CheckInRecorded,
    device: KnownDevice | None,
    nonce_already_used: bool,
    signature_valid: bool | None = None,
) -> AuthenticationFailure | None:
    """`signature_valid`: the signature, checked already against `device`'s key
    (services/claims/signatures.py); None checks it here."""
    if device is None:
        return AuthenticationFailure(RejectionReason.UNKNOWN_DEVICE, "device is not registered")
    if device.provider_id != checkin.provider_id:
        return AuthenticationFailure(
            RejectionReason.UNKNOWN_DEVICE, "device is registered to another provider"
        )
    if device.revoked_at is not None:
        return AuthenticationFailure(RejectionReason.DEVICE_REVOKED, "device was revoked")
    if signature_valid is None:
        signature_valid = verify(device.public_key, canonical_checkin(checkin), checkin.signature)
    if not signature_valid:
        return AuthenticationFailure(
            RejectionReason.BAD_SIGNATURE, "signature does not match the device's key"
        )
    if nonce_already_used:
        return AuthenticationFailure(
            RejectionReason.REPLAYED, "nonce was already used by this device"
        )
    return None


@dataclass(frozen=True)
class CancellationFailure:
    reason: DeadLetterReason
    detail: str


def authenticate_cancellation(
    cancellation: CheckInCancelled,
    device: KnownDevice | None,
    replaced: Sequence[ReplacedKey],
    arrived: datetime,
) -> CancellationFailure | None:
    """Whether a cancellation is signed by a known, non-revoked device of the provider it
    names, with the device's current key or a key replaced only after the cancellation
    reached the broker (`arrived`), as for a check-in. A device not known (yet) fails as
    `unknown_device`, and a key newer than the device's we know as `bad_signature`
    (awaits_newer_key): the caller parks those until the registration comes, as it does a
    check-in (cancellations.py, parking.py)."""
    if device is None:
        return CancellationFailure(DeadLetterReason.UNKNOWN_DEVICE, "device is not registered")
    if device.provider_id != cancellation.provider_id:
        return CancellationFailure(
            DeadLetterReason.WRONG_PROVIDER, "device is registered to another provider"
        )
    if device.revoked_at is not None:
        return CancellationFailure(DeadLetterReason.DEVICE_REVOKED, "device was revoked")
    message = canonical_cancellation(cancellation)
    if not verify(
        device.public_key, message, cancellation.signature
    ) and not _signed_with_replaced_key(message, cancellation.signature, replaced, arrived):
        return CancellationFailure(
            DeadLetterReason.BAD_SIGNATURE, "signature does not match the device's key"
        )
    return None
