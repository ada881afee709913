from __future__ import annotations

import uuid

import pytest

from services.cards.domain.access import (
    Principal,
    Role,
    check_person_access,
    check_provider_access,
    referrer_org_for,
)
from services.cards.domain.errors import Forbidden, InvalidField

ORG, OTHER = uuid.uuid4(), uuid.uuid4()
PROVIDER = uuid.uuid4()
ADMIN = Principal("admin", Role.PROGRAM_ADMIN)
REFERRER = Principal("ocmw", Role.REFERRER, organisation_id=ORG)
PROVIDER_ADMIN = Principal("cc", Role.PROVIDER_ADMIN, provider_id=PROVIDER)


def test_referrer_sees_only_its_own_people() -> None:
    check_person_access(REFERRER, ORG)
    check_person_access(ADMIN, OTHER)
    with pytest.raises(Forbidden, match="another organisation"):
        check_person_access(REFERRER, OTHER)
    for role in (Role.FINANCE, Role.OPERATOR, Role.PROVIDER_ADMIN):
        with pytest.raises(Forbidden, match=f"role {role.value} may not touch card holders"):
            check_person_access(Principal("x", role), ORG)


def test_provider_admin_manages_only_its_provider() -> None:
    check_provider_access(PROVIDER_ADMIN, PROVIDER)
    check_provider_access(ADMIN, PROVIDER)
    with pytest.raises(Forbidden, match="another provider"):
        check_provider_access(PROVIDER_ADMIN, uuid.uuid4())
    with pytest.raises(Forbidden):
        check_provider_access(REFERRER, PROVIDER)


def test_people_are_registered_under_the_referrers_own_organisation() -> None:
    assert referrer_org_for(REFERRER, None) == ORG
    assert referrer_org_for(REFERRER, ORG) == ORG
    with pytest.raises(Forbidden, match="its own organisation"):
        referrer_org_for(REFERRER, OTHER)
    assert referrer_org_for(ADMIN, OTHER) == OTHER
    with pytest.raises(InvalidField, match="referrer_org_id"):
        referrer_org_for(ADMIN, None)
    with pytest.raises(Forbidden):
        referrer_org_for(PROVIDER_ADMIN, ORG)
