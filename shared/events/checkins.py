"""What providers' devices send. The wire format is documented in docs/device-protocol.md."""

from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import Field

from shared.events.base import EventPayload, Instant

MAX_CHECKIN_BYTES = 4096


class ActivityCategory(StrEnum):
    CULTURE = "culture"
    SPORT = "sport"
    YOUTH = "youth"
    COURSE = "course"
    MEMBERSHIP = "membership"


class Activity(EventPayload):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    category: ActivityCategory
    name: str = Field(min_length=1, max_length=120)


class CheckInRecorded(EventPayload):
    checkin_id: uuid.UUID
    device_id: uuid.UUID
    provider_id: uuid.UUID
    activity: Activity
    card_number: str = Field(pattern=r"^[0-9]{13}$")
    price_cents: int = Field(ge=0, le=10_000_000)
    occurred_at: Instant
    counter: int = Field(ge=0, le=2**53)
    nonce: str = Field(pattern=r"^[0-9a-f]{32}$")
    signature: str = Field(min_length=1, max_length=200)
    # The device's key that signed it (its registration's key_id), if the device says: not
    # signed itself. A check-in signed with a key claims has not heard of yet waits for it.
    key_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class CancellationReason(StrEnum):
    """Why a provider cancelled a check-in: the provider picks one. A closed set: what staff
    type at a till ("klant was ziek", "verkeerde kaart gescand bij Jan") can name the card
    holder, their health or a colleague, and would stay on the broker for every consumer,
    where it cannot be erased. It travels on into ClaimReversed (shared/events/claims.py)."""

    ACTIVITY_CANCELLED = "activity_cancelled"  # the activity did not take place
    SCANNED_IN_ERROR = "scanned_in_error"  # by mistake: the wrong card, or no visit at all
    SCANNED_TWICE = "scanned_twice"  # the same visit scanned again (another checkin_id)
    DID_NOT_ATTEND = "did_not_attend"  # checked in, but did not take part after all
    REFUNDED_AT_TILL = "refunded_at_till"  # the provider paid the price back itself
    OTHER = "other"


class CheckInCancelled(EventPayload):
    """A provider cancels one of its check-ins, with a reason code (never free text), signed
    by one of the provider's devices (shared/checkin_signature.canonical_cancellation)."""

    checkin_id: uuid.UUID
    device_id: uuid.UUID
    provider_id: uuid.UUID
    card_number: str = Field(pattern=r"^[0-9]{13}$")
    reason: CancellationReason
    cancelled_at: Instant
    signature: str = Field(min_length=1, max_length=200)
    # As on CheckInRecorded: the key that signed it, if the device says; not signed itself.
    key_id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class DeviceHeartbeat(EventPayload):
    device_id: uuid.UUID
    provider_id: uuid.UUID
    sent_at: Instant
    counter: int = Field(ge=0)
    buffered: int = Field(ge=0)
    signature: str = Field(min_length=1, max_length=200)
    # Device clock minus a reference clock, when the device could measure it; signed.
    clock_offset_ms: int | None = Field(default=None, ge=-(10**12), le=10**12)
