"""Payment events: published by claims for the finance department, and finance's answers."""

from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import Field

from shared.events.base import EventPayload, Instant
from shared.events.claims import PayeeKind

OGM_PATTERN = r"^\+\+\+\d{3}/\d{4}/\d{5}\+\+\+$"


class PaymentRequested(EventPayload):
    payment_id: uuid.UUID
    run_id: uuid.UUID
    payee_kind: PayeeKind
    payee_id: uuid.UUID
    amount_cents: int = Field(gt=0)
    currency: str = Field(default="EUR", pattern=r"^EUR$")
    structured_reference: str = Field(pattern=OGM_PATTERN)
    remittance_info: str = Field(max_length=140)
    # Name and IBAN of the payee, sealed for finance; absent when none is known yet.
    beneficiary_sealed: str | None = None
    claims: int = Field(ge=1, description="number of claims this payment settles")
    requested_at: Instant


# ISO 20022 reasons a bank gives for refusing a transfer that mean the account (or its
# holder's details) must change before paying again: paying the same account would only be
# refused again.
ACCOUNT_REASON_CODES = frozenset({"AC01", "AC04", "AC06", "AG01", "BE04", "MD07", "RC01"})


class HoldReason(StrEnum):
    NO_ACCOUNT = "no_account"  # the desk has no bank account of the holder
    ACCOUNT_REFUSED = "account_refused"  # the bank refused the one it has (ACCOUNT_REASON_CODES)


class RefundHeld(EventPayload):
    """A card holder is owed refunds, but has no bank account we can pay: the payment runs
    hold them until the cards desk records one (then the next run pays them whole). Once
    per hold, when a run first holds them."""

    holder_id: uuid.UUID
    amount_cents: int = Field(gt=0, description="what the holder was owed at that run")
    held_at: Instant
    reason: HoldReason = HoldReason.NO_ACCOUNT


class PaymentRunCompleted(EventPayload):
    run_id: uuid.UUID
    payments: int = Field(ge=0)
    total_cents: int = Field(ge=0)
    completed_at: Instant


class PaymentSettled(EventPayload):
    payment_id: uuid.UUID
    amount_cents: int = Field(gt=0)
    settled_at: Instant
    bank_reference: str = Field(max_length=64)


class PaymentFailed(EventPayload):
    payment_id: uuid.UUID
    amount_cents: int = Field(gt=0)
    failed_at: Instant
    reason_code: str = Field(max_length=16, description="ISO 20022 status reason, e.g. AC01")
    reason: str = Field(max_length=200)


class PaymentReturned(EventPayload):
    """The bank returned a payment it had settled (an R-transaction: the account was closed
    after booking, the holder died, ...). The amount is owed again; a return for the
    account's sake (ACCOUNT_REASON_CODES) waits for another account like a refusal does."""

    payment_id: uuid.UUID
    amount_cents: int = Field(gt=0)
    returned_at: Instant
    reason_code: str = Field(max_length=16, description="ISO 20022 return reason, e.g. AC04")
    reason: str = Field(max_length=200)
