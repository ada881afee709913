"""Decisions of the claims service: one per check-in, whatever happens."""

from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import Field

from shared.events.base import EventPayload, Instant
from shared.events.checkins import ActivityCategory


class PayeeKind(StrEnum):
    CARD_HOLDER = "card_holder"
    PROVIDER = "provider"


class RejectionReason(StrEnum):
    UNKNOWN_CARD = "unknown_card"
    CARD_BLOCKED = "card_blocked"
    CARD_EXPIRED = "card_expired"
    CARD_REVOKED = "card_revoked"
    CARD_REPLACED = "card_replaced"
    NOT_ELIGIBLE = "not_eligible"
    CATEGORY_NOT_ELIGIBLE = "category_not_eligible"
    PROVIDER_NOT_PARTNER = "provider_not_partner"
    ALREADY_TODAY = "already_today"
    BUDGET_EXHAUSTED = "budget_exhausted"
    UNKNOWN_DEVICE = "unknown_device"
    DEVICE_REVOKED = "device_revoked"
    BAD_SIGNATURE = "bad_signature"
    REPLAYED = "replayed"
    OUT_OF_WINDOW = "out_of_window"
    IN_THE_FUTURE = "in_the_future"
    NOTHING_TO_REFUND = "nothing_to_refund"
    FREQUENCY_LIMIT = "frequency_limit"
    CHECKIN_CANCELLED = "checkin_cancelled"


class ClaimApproved(EventPayload):
    claim_id: uuid.UUID
    checkin_id: uuid.UUID
    card_id: uuid.UUID
    holder_id: uuid.UUID
    provider_id: uuid.UUID
    activity_id: str
    category: ActivityCategory
    target_group: str
    price_cents: int = Field(ge=0)
    amount_cents: int = Field(gt=0, description="discount refunded or reimbursed")
    capped: bool
    payee_kind: PayeeKind
    occurred_at: Instant
    decided_at: Instant
    # Added later, so 0 by default: the provider's own share of `amount_cents` by the
    # distribution key. A till-discount provider is paid the discount less it.
    own_share_cents: int = Field(default=0, ge=0)


class ClaimRejected(EventPayload):
    claim_id: uuid.UUID
    checkin_id: uuid.UUID
    card_id: uuid.UUID | None
    holder_id: uuid.UUID | None
    provider_id: uuid.UUID
    activity_id: str
    reason: RejectionReason
    detail: str = Field(max_length=300)
    occurred_at: Instant
    decided_at: Instant
    # Added later, so optional: who an approval would have paid, by the provider's terms
    # when it happened. The card holder (refund mode) is told no refund comes; a holder who
    # had the discount at the till (provider) that it is not covered. None: provider unknown.
    payee_kind: PayeeKind | None = None


class ReversalReason(StrEnum):
    """Why claims reversed an approved claim. A code, never text a person typed (it reaches
    the card holder's notifications and stays on the broker). Claims reverses a claim only
    when its provider cancels the check-in, so these are the CancellationReason codes
    (shared/events/checkins.py), one for one; a reversal for another cause adds its own."""

    ACTIVITY_CANCELLED = "activity_cancelled"
    SCANNED_IN_ERROR = "scanned_in_error"
    SCANNED_TWICE = "scanned_twice"
    DID_NOT_ATTEND = "did_not_attend"
    REFUNDED_AT_TILL = "refunded_at_till"
    OTHER = "other"


class ClaimReversed(EventPayload):
    """An approved claim is undone: its transfers mirrored, its budget given back."""

    claim_id: uuid.UUID
    checkin_id: uuid.UUID
    holder_id: uuid.UUID
    provider_id: uuid.UUID
    amount_cents: int = Field(gt=0)
    reason: ReversalReason
    reversed_at: Instant
    # Added later, so optional: who the approval paid. A discount given at the till
    # (provider) lapses, a refund (card holder) is withdrawn; the holder is told which even
    # when this reversal reaches them before its approval did.
    payee_kind: PayeeKind | None = None


class BudgetThresholdCrossed(EventPayload):
    """A budget line's discount cost in a budget year reached a share of its budget."""

    budget_line: str = Field(min_length=1, max_length=100, description="the target group")
    budget_year: int = Field(description="the year the budget year starts in")
    percent: int = Field(gt=0, description="the threshold reached, in % of the budget")
    consumed_cents: int = Field(description="net discount cost booked in the budget year")
    budget_cents: int = Field(gt=0)
    crossed_at: Instant = Field(description="the ledger was counted up to this moment")
