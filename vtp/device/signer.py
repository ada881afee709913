"""A device identity: its ids and Ed25519 key, and the signed check-ins it produces."""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared import topics
from shared.checkin_signature import canonical_checkin, sign
from shared.envelope import Envelope, new_envelope
from shared.events.checkins import Activity, CheckInRecorded
from shared.ids import uuid7


@dataclass
class DeviceIdentity:
    device_id: uuid.UUID
    provider_id: uuid.UUID
    private_key: Ed25519PrivateKey
    counter: int = 0
    source: str = field(default="")

    @classmethod
    def from_registration(cls, data: dict[str, str]) -> DeviceIdentity:
        key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(data["private_key"]))
        return cls(uuid.UUID(data["device_id"]), uuid.UUID(data["provider_id"]), key)

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
    ) -> tuple[Envelope, CheckInRecorded]:
        """A signed check-in with a fresh nonce and the next counter value."""
        self.counter += 1
        unsigned = CheckInRecorded(
            checkin_id=uuid7(),
            device_id=self.device_id,
            provider_id=self.provider_id,
            activity=activity,
            card_number=card_number,
            price_cents=price_cents,
            occurred_at=occurred_at or datetime.now(UTC),
            counter=self.counter,
            nonce=secrets.token_hex(16),
            signature="-",
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
