"""A device identity: its ids and Ed25519 key, and the signed events it produces."""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared import topics
from shared.checkin_signature import (
    canonical_cancellation,
    canonical_checkin,
    canonical_heartbeat,
    sign,
)
from shared.envelope import Envelope, new_envelope
from shared.events.checkins import (
    Activity,
    CancellationReason,
    CheckInCancelled,
    CheckInRecorded,
    DeviceHeartbeat,
)
from shared.ids import uuid7


def to_millis(value: datetime) -> datetime:
    """The signature covers milliseconds; sending no finer keeps the JSON equal to what is signed."""
    if value.utcoffset() is None:
        # astimezone() would read it in this machine's zone: hours off on a kiosk set to UTC.
        raise ValueError(f"{value.isoformat()} has no UTC offset")
    utc = value.astimezone(UTC)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


@dataclass
class DeviceIdentity:
    device_id: uuid.UUID
    provider_id: uuid.UUID
    private_key: Ed25519PrivateKey
    counter: int = 0
    source: str = field(default="")
    # The registration's key_id of `private_key`, sent with each check-in: claims waits for
    # a key it has not heard of yet (a rotation) instead of refusing the signature.
    key_id: int | None = None

    @classmethod
    def from_registration(cls, data: Mapping[str, Any]) -> DeviceIdentity:
        key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(data["private_key"]))
        key_id = data.get("key_id")
        return cls(
            uuid.UUID(data["device_id"]),
            uuid.UUID(data["provider_id"]),
            key,
            key_id=None if key_id is None else int(key_id),
        )

    def __post_init__(self) -> None:
        if not self.source:
            self.source = f"/vrijetijdspas/devices/{self.device_id}"

    def check_in(
        self,
        *,
        card_number: str,
        activity: Activity,
        price_cents: int,
        occurred_at: datetime | None = None,
        counter: int | None = None,
        nonce: str | None = None,
        checkin_id: uuid.UUID | None = None,
    ) -> tuple[Envelope, CheckInRecorded]:
        """A signed check-in with a fresh nonce and the next counter value (or the given
        one, when the counter is kept elsewhere, as in the device journal)."""
        self.counter = counter if counter is not None else self.counter + 1
        unsigned = CheckInRecorded(
            checkin_id=checkin_id or uuid7(),
            device_id=self.device_id,
            provider_id=self.provider_id,
            activity=activity,
            card_number=card_number,
            price_cents=price_cents,
            occurred_at=to_millis(occurred_at or datetime.now(UTC)),
            counter=self.counter,
            nonce=nonce or secrets.token_hex(16),
            signature="-",
            key_id=self.key_id,
        )
        signed = unsigned.model_copy(
            update={"signature": sign(self.private_key, canonical_checkin(unsigned))}
        )
        envelope = new_envelope(
            type=topics.CHECKIN_RECORDED.event_type,
            source=self.source,
            subject=str(signed.checkin_id),
        )
        return envelope, signed

    def cancellation(
        self,
        *,
        checkin_id: uuid.UUID,
        card_number: str,
        reason: CancellationReason,
        cancelled_at: datetime | None = None,
    ) -> tuple[Envelope, CheckInCancelled]:
        """A signed cancellation of one of this provider's check-ins (docs/device-protocol.md
        section 9). It does not use the check-in counter."""
        unsigned = CheckInCancelled(
            checkin_id=checkin_id,
            device_id=self.device_id,
            provider_id=self.provider_id,
            card_number=card_number,
            reason=reason,
            cancelled_at=to_millis(cancelled_at or datetime.now(UTC)),
            signature="-",
            key_id=self.key_id,
        )
        return self.signed_cancellation(unsigned)

    def signed_cancellation(
        self, cancellation: CheckInCancelled
    ) -> tuple[Envelope, CheckInCancelled]:
        """`cancellation` signed with this device's key (and its key_id), in a new message."""
        signed = cancellation.model_copy(
            update={
                "signature": sign(self.private_key, canonical_cancellation(cancellation)),
                "key_id": self.key_id,
            }
        )
        envelope = new_envelope(
            type=topics.CHECKIN_CANCELLED.event_type,
            source=self.source,
            subject=str(signed.checkin_id),
        )
        return envelope, signed

    def heartbeat(
        self,
        *,
        buffered: int,
        clock_offset_ms: int | None = None,
        sent_at: datetime | None = None,
    ) -> tuple[Envelope, DeviceHeartbeat]:
        """A signed 'alive' message: the last counter used, how many check-ins wait to be
        sent, and how far the device clock is off when it could measure that."""
        unsigned = DeviceHeartbeat(
            device_id=self.device_id,
            provider_id=self.provider_id,
            sent_at=to_millis(sent_at or datetime.now(UTC)),
            counter=self.counter,
            buffered=buffered,
            clock_offset_ms=clock_offset_ms,
            signature="-",
        )
        signed = unsigned.model_copy(
            update={"signature": sign(self.private_key, canonical_heartbeat(unsigned))}
        )
        envelope = new_envelope(
            type=topics.DEVICE_HEARTBEAT.event_type, source=self.source, subject=str(self.device_id)
        )
        return envelope, signed
