"""Events of the cards service. They carry opaque ids and card numbers, never personal data:
names, national numbers and bank accounts only travel sealed for the one service that needs them.
"""

from __future__ import annotations

import uuid
from datetime import date
from enum import StrEnum

from pydantic import Field

from shared.events.base import EventPayload, Instant


class CardStatus(StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"
    REPLACED = "replaced"
    EXPIRED = "expired"
    REVOKED = "revoked"


class CardStatusReason(StrEnum):
    """Why a card's status changed. A closed set: what a person types about a card holder
    ("moved in with her sister at ...") could name them or their situation, and would stay
    on the broker for every consumer, where it cannot be erased. The desk keeps such a note
    in the cards database only (services/cards/domain/reasons.py: which code fits which
    action, and the codes' Dutch labels)."""

    LOST = "lost"
    STOLEN = "stolen"
    DAMAGED = "damaged"
    FOUND = "found"  # a blocked card turned up again
    FRAUD_SUSPECTED = "fraud_suspected"  # misuse of the card (a copy, someone else's use)
    HOLDER_REQUEST = "holder_request"
    NO_LONGER_ELIGIBLE = "no_longer_eligible"  # moved away, died, no longer in a target group
    ISSUED_IN_ERROR = "issued_in_error"
    ELIGIBILITY_ENDED = "eligibility_ended"  # the daily job: the grant and its grace ended
    HOLDER_ERASED = "holder_erased"  # erasure revokes the holder's live cards
    OTHER = "other"


class DeviceRevocationReason(StrEnum):
    """Why a provider's check-in device was revoked; closed for the same reason."""

    LOST = "lost"
    STOLEN = "stolen"
    REPLACED = "replaced"  # by a new device
    PROVIDER_STOPPED = "provider_stopped"  # the provider left the scheme or closed
    KEY_COMPROMISED = "key_compromised"
    OTHER = "other"


class ProviderMode(StrEnum):
    REFUND = "refund"  # the card holder pays full price and is refunded
    TILL_DISCOUNT = "till_discount"  # the provider gives the discount and is reimbursed


class OrganisationKind(StrEnum):
    OCMW = "ocmw"
    WELFARE_COUNCIL = "welfare_council"
    ASSOCIATION = "association"
    OUTREACH = "outreach"
    YOUTH_CARE = "youth_care"
    MUNICIPAL_SERVICE = "municipal_service"
    FINANCE = "finance"


class OrganisationRegistered(EventPayload):
    organisation_id: uuid.UUID
    name: str = Field(max_length=200)
    kind: OrganisationKind
    contact_email: str | None = Field(default=None, max_length=254)
    webhook_url: str | None = Field(default=None, max_length=500)
    sub_municipality: str | None = Field(default=None, max_length=100)


class ProviderRegistered(EventPayload):
    provider_id: uuid.UUID
    organisation_id: uuid.UUID | None = None
    name: str = Field(max_length=200)
    sub_municipality: str = Field(max_length=100)
    mode: ProviderMode = ProviderMode.REFUND
    partner: bool = True
    contact_email: str | None = Field(default=None, max_length=254)
    # Provider bank account, sealed for finance (till-discount reimbursements).
    beneficiary_sealed: str | None = None


class CardIssued(EventPayload):
    card_id: uuid.UUID
    card_number: str = Field(pattern=r"^[0-9]{13}$")
    holder_id: uuid.UUID
    target_group: str = Field(max_length=50)
    eligible_from: date
    eligible_until: date
    grace_days: int = Field(ge=0, le=365)
    referrer_org_id: uuid.UUID
    resident: bool = True
    sub_municipality: str | None = Field(default=None, max_length=100)
    issued_at: Instant
    replaces_card_id: uuid.UUID | None = None


class CardStatusChanged(EventPayload):
    card_id: uuid.UUID
    card_number: str = Field(pattern=r"^[0-9]{13}$")
    holder_id: uuid.UUID
    status: CardStatus
    reason: CardStatusReason
    effective_at: Instant


class EligibilityGrant(EventPayload):
    """One grant of a target group for a period; the grace days follow its end date."""

    target_group: str = Field(max_length=50)
    eligible_from: date
    eligible_until: date
    grace_days: int = Field(ge=0, le=365)


class EligibilityChanged(EventPayload):
    """A holder's grants changed. The single grant in the top-level fields is the one that
    reaches furthest (what producers before `grants` sent); `grants` holds all of them, so
    a late check-in is judged by the grant in force on its own day. Empty from older
    producers."""

    holder_id: uuid.UUID
    target_group: str = Field(max_length=50)
    eligible_from: date
    eligible_until: date
    grace_days: int = Field(ge=0, le=365)
    referrer_org_id: uuid.UUID
    changed_at: Instant
    grants: tuple[EligibilityGrant, ...] = ()


class HolderDetailsChanged(EventPayload):
    """What other services may know of a card holder, sealed per recipient service."""

    holder_id: uuid.UUID
    referrer_org_id: uuid.UUID
    channel: str = Field(pattern=r"^(email|letter|none)$")
    language: str = Field(pattern=r"^(nl|en)$")
    # Name and IBAN, sealed for the finance department (payments need them).
    beneficiary_sealed: str | None = None
    # E-mail or postal address, sealed for the notifications service.
    contact_sealed: str | None = None
    changed_at: Instant


class HolderErased(EventPayload):
    holder_id: uuid.UUID
    erased_at: Instant


class DeviceRegistered(EventPayload):
    device_id: uuid.UUID
    provider_id: uuid.UUID
    public_key: str = Field(description="Ed25519 public key, raw 32 bytes, base64")
    key_id: int = Field(ge=1, description="increments with each key rotation")
    registered_at: Instant


class DeviceRevoked(EventPayload):
    device_id: uuid.UUID
    provider_id: uuid.UUID
    revoked_at: Instant
    reason: DeviceRevocationReason


class EligibilityEndingSoon(EventPayload):
    """The daily job's notice to the referrer: a grant ends soon (once per end date)."""

    holder_id: uuid.UUID
    referrer_org_id: uuid.UUID
    target_group: str = Field(max_length=50)
    eligible_until: date
    grace_days: int = Field(ge=0, le=365)
    announced_at: Instant
