"""Request bodies. Pydantic checks shapes and types; the domain checks meaning (a valid
national number, a period that ends after it starts) and names the field when it refuses."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    HttpUrl,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from services.cards.domain.access import Role
from services.cards.domain.reasons import CARD_REASONS
from shared.events.cards import (
    CardStatusReason,
    DeviceRevocationReason,
    OrganisationKind,
    ProviderMode,
)
from shared.events.checkins import ActivityCategory
from shared.text import MultilineText, PlainText

Channel = Literal["email", "letter", "none"]
Language = Literal["nl", "en"]
Reason = Field(min_length=1, max_length=200)

# A first or last name: at registration, and when a typo in it is corrected.


def _not_blank(value: str) -> str:
    """A name of spaces only would print an empty line on a letter and a transfer."""
    if not value.strip():
        raise ValueError("is only spaces: type the name")
    return value.strip()


PersonName = Annotated[PlainText, Field(min_length=1, max_length=100), AfterValidator(_not_blank)]
IDENTITY_FIXED = (
    "cannot be changed: another national number or birth date is another person; register"
    " them anew (the program administrator can erase a record made in error)"
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


_HTTP_URL = TypeAdapter(HttpUrl)


def check_webhook_url(value: str) -> str:
    """An absolute https URL: notices about card holders travel to it, signed but readable
    in transit over plain http. Returned as given (stripped)."""
    value = value.strip()
    try:
        url = _HTTP_URL.validate_python(value)
    except ValidationError as exc:
        detail = str(exc.errors()[0].get("msg", "")).removeprefix("Input should be a valid URL, ")
        raise ValueError(
            f"must be an absolute https URL such as https://example.org/hook ({detail})"
        ) from None
    if url.scheme != "https":
        raise ValueError("must use https: webhooks carry notices about card holders")
    if url.username or url.password:
        raise ValueError("must not contain a user name or password; the webhook is signed")
    return value


class NewToken(Strict):
    label: PlainText = Field(min_length=1, max_length=100)
    role: Role
    organisation_id: uuid.UUID | None = None
    provider_id: uuid.UUID | None = None


class NewOrganisation(Strict):
    name: PlainText = Field(min_length=1, max_length=200)
    kind: OrganisationKind
    contact_email: EmailStr | None = None
    webhook_url: str | None = Field(
        default=None, max_length=500, description="An absolute https URL, e.g. https://ocmw.be/hook"
    )
    sub_municipality: PlainText | None = Field(default=None, max_length=100)

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        return None if value is None else check_webhook_url(value)


class ProviderDetails(Strict):
    """On a change (PUT), an omitted `mode`, `partner` or `organisation_id` keeps the current
    value; on registration they default to refund, a partner, and no organisation."""

    name: PlainText = Field(min_length=1, max_length=200)
    sub_municipality: PlainText = Field(min_length=1, max_length=100)
    mode: ProviderMode = ProviderMode.REFUND
    partner: bool = True
    organisation_id: uuid.UUID | None = Field(
        default=None,
        description="The partner organisation whose webhook receives the provider's notices."
        " Omit it on a change to keep the current one; `null` unlinks it.",
    )
    contact_email: EmailStr | None = None
    # Where till-discount reimbursements go; sealed for finance, never stored readable.
    iban: str | None = Field(
        default=None,
        max_length=42,
        description="Bank account for till-discount reimbursements. Sealed for finance as"
        " {name, iban}; never stored or shown readable. Omit it on a change to keep the"
        " current account; setting it needs the program administrator.",
    )
    account_holder: PlainText | None = Field(
        default=None,
        max_length=200,
        description="The account holder's name when it is not the provider's name.",
    )


class NewActivity(Strict):
    activity_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")
    name: PlainText = Field(min_length=1, max_length=120)
    category: ActivityCategory
    price_cents: int | None = Field(default=None, ge=0, le=10_000_000)
    active: bool = True


class NewPerson(Strict):
    first_name: PersonName
    last_name: PersonName
    date_of_birth: date
    national_number: str = Field(max_length=20, description="Belgian national register number")
    iban: str | None = Field(default=None, max_length=42)
    email: EmailStr | None = None
    address: MultilineText | None = Field(default=None, max_length=300)
    sub_municipality: PlainText | None = Field(default=None, max_length=100)
    resident: bool = True
    channel: Channel | None = Field(
        default=None,
        description="How the holder is told things. `email` needs `email`, `letter` needs"
        " `address`. Omitted: email when an e-mail address is given, else letter when an"
        " address is given, else none.",
    )
    language: Language = "nl"
    referrer_org_id: uuid.UUID | None = None


class PersonUpdate(Strict):
    """Only what is sent changes; `null` clears an optional field. A name may be corrected
    but not cleared. The national number and birth date cannot be changed: another one is
    another person."""

    first_name: PersonName | None = None
    last_name: PersonName | None = None
    iban: str | None = Field(default=None, max_length=42)
    email: EmailStr | None = None
    address: MultilineText | None = Field(default=None, max_length=300)
    sub_municipality: PlainText | None = Field(default=None, max_length=100)
    channel: Channel | None = None
    language: Language | None = None
    # Declared only to refuse them by name, with the reason (not "extra inputs").
    national_number: SkipJsonSchema[None] = None
    date_of_birth: SkipJsonSchema[None] = None

    @field_validator("first_name", "last_name", mode="before")
    @classmethod
    def _not_cleared(cls, value: object) -> object:
        if value is None:
            raise ValueError("cannot be cleared; send the corrected name")
        return value

    @field_validator("national_number", "date_of_birth", mode="before")
    @classmethod
    def _identity(cls, value: object) -> object:
        raise ValueError(IDENTITY_FIXED)


class NewEligibility(Strict):
    target_group: PlainText = Field(min_length=2, max_length=50)
    eligible_from: date
    eligible_until: date
    grace_days: int = Field(default=30, ge=0, le=365)
    evidence_ref: PlainText | None = Field(default=None, max_length=100)


class Extension(Strict):
    eligible_until: date
    reason: PlainText = Reason


class WithReason(Strict):
    """A reason that stays at the desk (the audit log): nothing sends it to other services."""

    reason: PlainText = Reason


NOTE_DESCRIPTION = (
    "Free text for the desk: kept in the cards database and the audit log (and blanked when"
    " the holder is erased), never sent to other services. Required when `reason` is"
    " `other`. Without it, the X-Audit-Reason header is the note."
)
# The codes a person may pick for some card action (GET /reason-codes: which fit which).
_DESK_CARD_REASONS = tuple(
    code for code in CardStatusReason if any(code in codes for codes in CARD_REASONS.values())
)


def _one_of(value: object, codes: Sequence[str]) -> object:
    """A refusal that names the codes, not the value sent: that may be typed free text."""
    if not isinstance(value, str) or value not in codes:
        raise ValueError(f"must be one of: {', '.join(codes)}")
    return value


class CardStatusChange(Strict):
    reason: CardStatusReason = Field(
        description="Why, as a code; it travels in the CardStatusChanged event."
        " GET /reason-codes lists the codes each action takes, with Dutch labels."
    )
    note: PlainText | None = Field(
        default=None, min_length=1, max_length=200, description=NOTE_DESCRIPTION
    )

    @field_validator("reason", mode="before")
    @classmethod
    def _offered(cls, value: object) -> object:
        return _one_of(value, _DESK_CARD_REASONS)


class DeviceRevocation(Strict):
    reason: DeviceRevocationReason = Field(
        description="Why, as a code; it travels in the DeviceRevoked event."
    )
    note: PlainText | None = Field(
        default=None, min_length=1, max_length=200, description=NOTE_DESCRIPTION
    )

    @field_validator("reason", mode="before")
    @classmethod
    def _offered(cls, value: object) -> object:
        return _one_of(value, tuple(DeviceRevocationReason))
