"""Signals derived from events: when a card counts as unused, a device as silent (and
whether its heartbeat may be believed), and how long to wait before retrying. Pure
functions. (Whether a budget line crossed a threshold is the claims service's to decide:
it keeps the budgets and the ledger.)"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from shared.checkin_signature import canonical_heartbeat, verify
from shared.deadletter import DeadLetterReason
from shared.events.checkins import DeviceHeartbeat

_KEY_NAMESPACE = uuid.UUID("0b5f3f6e-8f63-4a53-9d1c-5a0c2e7f4e21")


def notification_key(*parts: object) -> uuid.UUID:
    """A stable id for a notification not caused by one event (a scan, a digest, a
    threshold): the same facts give the same key, so a rerun cannot notify twice."""
    return uuid.uuid5(_KEY_NAMESPACE, "/".join(str(p) for p in parts))


def is_unused(last_use: datetime, now: datetime, after_days: int) -> bool:
    return now - last_use >= timedelta(days=after_days)


def ends_soon(eligible_until: date, today: date, warning_days: int) -> bool:
    return today <= eligible_until <= today + timedelta(days=warning_days)


def is_silent(
    last_seen: datetime, now: datetime, silent_hours: int, active_days_before: int, usual_days: int
) -> bool:
    """Silent for `silent_hours` while it was heard on at least `usual_days` of the week
    before: an alarm for a device that stopped, not for one that is rarely used."""
    return now - last_seen >= timedelta(hours=silent_hours) and active_days_before >= usual_days


@dataclass(frozen=True)
class KnownDevice:
    """A device as the cards service's events (and its accepted heartbeats) describe it."""

    provider_id: uuid.UUID
    public_key: str | None  # None: known from its revocation only, or from before keys were kept
    revoked: bool
    reported_at: datetime | None  # the signed sent_at of its latest accepted heartbeat


@dataclass(frozen=True)
class HeartbeatRefusal:
    reason: DeadLetterReason
    detail: str


def signed_millis(value: datetime) -> datetime:
    """A time as far as a signature covers it (milliseconds, shared/checkin_signature.py):
    finer digits can be changed without breaking the signature, so they must not count."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


# How close to our clock a device's signed sent_at must be for a heartbeat that is not
# newer than the last to count as fresh (a device whose clock was set right) and not a copy.
FRESH_HEARTBEAT = timedelta(minutes=10)


def heartbeat_refusal(
    h: DeviceHeartbeat, device: KnownDevice | None, received_at: datetime
) -> HeartbeatRefusal | None:
    """Why a heartbeat is not to be believed; None when it is. The checks, their order and
    their reasons are those claims applies to a check-in (services/claims/authentication.py,
    docs/device-protocol.md section 8). A heartbeat whose signed sent_at is not later than
    that of the device's latest accepted one is a replay (a copy of a genuine heartbeat
    must not keep a dead device alive), or a device whose clock was set back."""
    if device is None or (device.public_key is None and not device.revoked):
        return HeartbeatRefusal(
            DeadLetterReason.UNKNOWN_DEVICE, "device is not registered (no public key known)"
        )
    if device.provider_id != h.provider_id:
        return HeartbeatRefusal(
            DeadLetterReason.UNKNOWN_DEVICE, "device is registered to another provider"
        )
    if device.revoked or device.public_key is None:
        return HeartbeatRefusal(DeadLetterReason.DEVICE_REVOKED, "device was revoked")
    if not verify(device.public_key, canonical_heartbeat(h), h.signature):
        return HeartbeatRefusal(
            DeadLetterReason.BAD_SIGNATURE, "signature does not match the device's key"
        )
    sent_at = signed_millis(h.sent_at)
    if (
        device.reported_at is not None
        and sent_at <= device.reported_at
        # A kiosk's most common fault is a wrong clock: once set right, its heartbeats are
        # "older" than those it sent while it ran ahead. Sent about now, they are fresh; a
        # copy of an old one is not (and a copy of a recent one buys minutes at most).
        and abs(received_at - sent_at) > FRESH_HEARTBEAT
    ):
        return HeartbeatRefusal(
            DeadLetterReason.REPLAYED,
            f"sent_at is not after that of the device's latest heartbeat"
            f" ({device.reported_at.isoformat()}): not counted as a sign of life",
        )
    return None


def retry_delay_s(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff after the `attempt`-th failure (1-based): base, 2·base, 4·base…"""
    return float(min(base_s * 2 ** max(attempt - 1, 0), max_s))


def previous_month(today: date) -> tuple[date, date]:
    last = today.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last
