"""The canonical bytes of a check-in and its Ed25519 signature (docs/device-protocol.md).

The canonical form is built from the field *values*, one per line, in a fixed order, so a
device in any language can reproduce it with string formatting alone:

    vtp-checkin-v1\\n<checkin_id>\\n<device_id>\\n<provider_id>\\n<activity.id>\\n
    <activity.category>\\n<card_number>\\n<price_cents>\\n<occurred_at>\\n<counter>\\n<nonce>

UUIDs lower-case with hyphens; `occurred_at` in UTC as `YYYY-MM-DDTHH:MM:SS.mmmZ`; integers
in decimal without sign or leading zeros; no trailing newline. The signature is the 64-byte
Ed25519 signature in standard base64; the public key is the raw 32 bytes in standard base64.

A cancellation is signed the same way over its own canonical form, whose first line names
another domain, so that no check-in's signature is ever a cancellation's (or a heartbeat's):

    vtp-cancel-v1\\n<checkin_id>\\n<device_id>\\n<provider_id>\\n<card_number>\\n<reason>\\n
    <cancelled_at>
"""

from __future__ import annotations

import base64
import binascii
import functools
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from shared.events.checkins import CheckInCancelled, CheckInRecorded, DeviceHeartbeat

CHECKIN_DOMAIN = "vtp-checkin-v1"
HEARTBEAT_DOMAIN = "vtp-heartbeat-v1"
CANCELLATION_DOMAIN = "vtp-cancel-v1"


def format_timestamp(value: datetime) -> str:
    """UTC, millisecond precision, `Z` suffix: the only timestamp form that is signed."""
    utc = value.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def canonical_checkin(c: CheckInRecorded) -> bytes:
    fields = (
        CHECKIN_DOMAIN,
        str(c.checkin_id),
        str(c.device_id),
        str(c.provider_id),
        c.activity.id,
        c.activity.category.value,
        c.card_number,
        str(c.price_cents),
        format_timestamp(c.occurred_at),
        str(c.counter),
        c.nonce,
    )
    return "\n".join(fields).encode()


def canonical_cancellation(c: CheckInCancelled) -> bytes:
    fields = (
        CANCELLATION_DOMAIN,
        str(c.checkin_id),
        str(c.device_id),
        str(c.provider_id),
        c.card_number,
        c.reason.value,
        format_timestamp(c.cancelled_at),
    )
    return "\n".join(fields).encode()


def canonical_heartbeat(h: DeviceHeartbeat) -> bytes:
    fields: tuple[str, ...] = (
        HEARTBEAT_DOMAIN,
        str(h.device_id),
        str(h.provider_id),
        format_timestamp(h.sent_at),
        str(h.counter),
        str(h.buffered),
    )
    if h.clock_offset_ms is not None:
        # Added later: heartbeats without an offset keep their original canonical bytes.
        fields = (*fields, str(h.clock_offset_ms))
    return "\n".join(fields).encode()


def sign(private_key: Ed25519PrivateKey, message: bytes) -> str:
    return base64.b64encode(private_key.sign(message)).decode()


def verify(public_key_b64: str, message: bytes, signature_b64: str) -> bool:
    """True only for a well-formed signature by that key over exactly these bytes.

    Verified with libsodium (PyNaCl): ~38 µs against ~62 µs for OpenSSL through
    `cryptography`, and verifying is the largest single cost of judging a check-in.
    libsodium is also the stricter of the two (non-canonical signatures and small-order
    keys are refused); honest devices never produce either."""
    try:
        key = _verify_key(public_key_b64)
        signature = binascii.a2b_base64(signature_b64, strict_mode=True)
        if len(signature) != 64:
            return False
        key.verify(message, signature)
    except (CryptoError, ValueError, binascii.Error):
        return False
    return True


@functools.lru_cache(maxsize=8192)
def _verify_key(public_key_b64: str) -> VerifyKey:
    """A device's key, decoded once: a batch holds many check-ins per device."""
    return VerifyKey(binascii.a2b_base64(public_key_b64, strict_mode=True))


def public_key_b64(private_key: Ed25519PrivateKey) -> str:
    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()
