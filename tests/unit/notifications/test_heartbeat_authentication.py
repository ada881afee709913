"""Whether a heartbeat may be believed: signed by the registered key of a device of that
provider, not revoked, and newer than the last one believed (a copy must not keep a dead
device alive)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.notifications.signals import KnownDevice, heartbeat_refusal, signed_millis
from shared.checkin_signature import public_key_b64
from shared.deadletter import DeadLetterReason
from shared.events.checkins import DeviceHeartbeat
from vtp.device.signer import DeviceIdentity

AT = datetime(2026, 11, 28, 9, 30, 0, 250_000, tzinfo=UTC)
LATER = AT + timedelta(hours=1)  # when a copy of a heartbeat sent at AT is received


def device_and_record() -> tuple[DeviceIdentity, KnownDevice]:
    """A device as the reference client signs, and as the cards service registered it."""
    key = Ed25519PrivateKey.generate()
    identity = DeviceIdentity(uuid.uuid4(), uuid.uuid4(), key, counter=41)
    return identity, KnownDevice(identity.provider_id, public_key_b64(key), False, None)


def beat(identity: DeviceIdentity, at: datetime = AT, offset: int | None = None) -> DeviceHeartbeat:
    return identity.heartbeat(buffered=2, clock_offset_ms=offset, sent_at=at)[1]


def reason(
    h: DeviceHeartbeat, device: KnownDevice | None, received_at: datetime = LATER
) -> DeadLetterReason | None:
    refusal = heartbeat_refusal(h, device, received_at)
    return None if refusal is None else refusal.reason


@pytest.mark.parametrize("offset", [None, 0, -93_600_000, 250])
def test_a_heartbeat_signed_by_the_registered_key_is_believed(offset: int | None) -> None:
    identity, known = device_and_record()
    assert heartbeat_refusal(beat(identity, offset=offset), known, AT) is None


def test_an_unknown_device_or_one_without_a_key_is_refused() -> None:
    identity, _ = device_and_record()
    h = beat(identity)
    assert reason(h, None) is DeadLetterReason.UNKNOWN_DEVICE
    # Known from before keys were kept (or its key has not reached us yet).
    keyless = KnownDevice(identity.provider_id, None, False, None)
    assert reason(h, keyless) is DeadLetterReason.UNKNOWN_DEVICE


def test_a_heartbeat_naming_another_provider_is_refused_even_when_signed() -> None:
    identity, known = device_and_record()
    identity.provider_id = uuid.uuid4()  # signs the other provider's id: a valid signature
    refusal = heartbeat_refusal(beat(identity), known, AT)
    assert refusal is not None
    assert refusal.reason is DeadLetterReason.UNKNOWN_DEVICE
    assert "another provider" in refusal.detail


def test_a_revoked_device_is_refused() -> None:
    identity, known = device_and_record()
    revoked = KnownDevice(known.provider_id, known.public_key, True, None)
    assert reason(beat(identity), revoked) is DeadLetterReason.DEVICE_REVOKED
    # Known from its revocation only.
    only_revoked = KnownDevice(known.provider_id, None, True, None)
    assert reason(beat(identity), only_revoked) is DeadLetterReason.DEVICE_REVOKED


def test_unsigned_tampered_or_foreign_signatures_are_refused() -> None:
    identity, known = device_and_record()
    h = beat(identity)
    assert reason(h.model_copy(update={"signature": "s"}), known) is DeadLetterReason.BAD_SIGNATURE
    for change in (
        {"sent_at": AT + timedelta(days=1)},
        {"buffered": 0},
        {"counter": 7},
        {"clock_offset_ms": 5},
    ):
        assert reason(h.model_copy(update=change), known) is DeadLetterReason.BAD_SIGNATURE
    stranger, _ = device_and_record()
    stranger.device_id, stranger.provider_id = identity.device_id, identity.provider_id
    assert reason(beat(stranger), known) is DeadLetterReason.BAD_SIGNATURE


def test_a_copy_of_a_believed_heartbeat_is_a_replay_whatever_its_extra_digits() -> None:
    identity, known = device_and_record()
    h = beat(identity)
    seen = KnownDevice(known.provider_id, known.public_key, False, signed_millis(h.sent_at))
    assert reason(h, seen) is DeadLetterReason.REPLAYED
    # Microseconds are not signed: adding some does not make a copy newer.
    finer = h.model_copy(update={"sent_at": h.sent_at + timedelta(microseconds=999)})
    assert reason(finer, known) is None  # the signature still holds…
    assert reason(finer, seen) is DeadLetterReason.REPLAYED  # …but it is no newer
    assert reason(beat(identity, AT - timedelta(seconds=1)), seen) is DeadLetterReason.REPLAYED
    assert reason(beat(identity, AT + timedelta(milliseconds=1)), seen) is None


def test_a_device_whose_clock_was_set_right_is_believed_again_at_once() -> None:
    # A kiosk ran a year ahead; its clock is corrected. Its heartbeats are "older" than the
    # last one believed, but sent about now: fresh, not copies.
    identity, known = device_and_record()
    ahead = AT + timedelta(days=365)
    seen = KnownDevice(known.provider_id, known.public_key, False, ahead)
    assert reason(beat(identity, AT), seen, received_at=AT + timedelta(seconds=2)) is None
    # A copy of what it sent while it ran ahead, or of an old heartbeat, still is a replay.
    assert reason(beat(identity, ahead), seen, received_at=AT) is DeadLetterReason.REPLAYED
    stale = beat(identity, AT - timedelta(hours=2))
    assert reason(stale, seen, received_at=AT) is DeadLetterReason.REPLAYED


def test_a_device_whose_clock_fell_behind_is_believed_when_its_offset_says_so() -> None:
    # Right until now, then reset to a firmware's date, or an hour and twelve minutes
    # behind: its heartbeats are "older" than the last one believed, yet sent now by the
    # clock it measures against, as the offset it signs says. Believed, and its provider
    # can hear that the clock is off (signals.judge_clock).
    identity, known = device_and_record()
    seen = KnownDevice(known.provider_id, known.public_key, False, AT)
    for behind in (timedelta(minutes=72), timedelta(days=2_000)):
        offset = -behind // timedelta(milliseconds=1)
        h = beat(identity, AT + timedelta(minutes=1) - behind, offset)
        assert reason(h, seen, received_at=AT + timedelta(minutes=1)) is None
        # Without the offset, or with one that does not place it now, it is a replay…
        assert reason(beat(identity, h.sent_at), seen, received_at=AT) is DeadLetterReason.REPLAYED
        # …and so is its copy, later: the offset places it when it was sent.
        later = AT + timedelta(minutes=12)
        assert reason(h, seen, received_at=later) is DeadLetterReason.REPLAYED
    # An offset at the bound a heartbeat carries (a kiosk at 1970) does not place it.
    at_1970 = beat(identity, datetime(1970, 1, 1, 0, 5, tzinfo=UTC), -(10**12))
    assert reason(at_1970, seen, received_at=AT) is DeadLetterReason.REPLAYED
