"""Who may do what. A referrer works only with its own organisation's people; a provider
administrator only with its own provider; the program administrator with everything."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from services.cards.domain.errors import Forbidden, InvalidField


class Role(StrEnum):
    PROGRAM_ADMIN = "program_admin"
    REFERRER = "referrer"
    PROVIDER_ADMIN = "provider_admin"
    FINANCE = "finance"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Principal:
    label: str
    role: Role
    token_id: uuid.UUID | None = None
    organisation_id: uuid.UUID | None = None
    provider_id: uuid.UUID | None = None


SYSTEM = Principal(label="system", role=Role.OPERATOR)


def require_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        raise Forbidden(f"role {principal.role.value} may not do this (allowed: {allowed})")


def check_person_access(principal: Principal, person_org_id: uuid.UUID) -> None:
    """Personal files are for the program administrator and the person's own referrer."""
    if principal.role is Role.PROGRAM_ADMIN:
        return
    if principal.role is Role.REFERRER:
        if principal.organisation_id == person_org_id:
            return
        raise Forbidden("person: this person is followed by another organisation")
    raise Forbidden(f"role {principal.role.value} may not touch card holders")


def check_provider_access(principal: Principal, provider_id: uuid.UUID) -> None:
    if principal.role is Role.PROGRAM_ADMIN:
        return
    if principal.role is Role.PROVIDER_ADMIN:
        if principal.provider_id == provider_id:
            return
        raise Forbidden("provider: this is another provider's")
    raise Forbidden(f"role {principal.role.value} may not manage providers")


def referrer_org_for(principal: Principal, requested: uuid.UUID | None) -> uuid.UUID:
    """The organisation a new person is registered under: a referrer's own, always."""
    if principal.role is Role.REFERRER:
        assert principal.organisation_id is not None  # enforced by the token table
        if requested is not None and requested != principal.organisation_id:
            raise Forbidden("referrer_org_id: a referrer registers people for its own organisation")
        return principal.organisation_id
    require_role(principal, Role.PROGRAM_ADMIN)
    if requested is None:
        raise InvalidField(
            "referrer_org_id", "is required when the program administrator registers"
        )
    return requested
