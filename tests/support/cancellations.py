"""Cancellations as a provider's device sends them: signed with the device's key."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from shared.envelope import Envelope
from shared.events.checkins import CancellationReason, CheckInCancelled
from vtp.device.signer import DeviceIdentity


def signed_cancellation(
    device: DeviceIdentity,
    *,
    checkin_id: uuid.UUID,
    card_number: str,
    reason: CancellationReason = CancellationReason.ACTIVITY_CANCELLED,
    cancelled_at: datetime | None = None,
    provider_id: uuid.UUID | None = None,
) -> tuple[Envelope, CheckInCancelled]:
    """A cancellation signed by `device`, naming its provider, or `provider_id` (a device
    claiming to speak for another provider: a forgery, well signed)."""
    unsigned = CheckInCancelled(
        checkin_id=checkin_id,
        device_id=device.device_id,
        provider_id=provider_id or device.provider_id,
        card_number=card_number,
        reason=reason,
        cancelled_at=(cancelled_at or datetime.now(UTC)).replace(microsecond=0),
        signature="-",
    )
    return device.signed_cancellation(unsigned)
