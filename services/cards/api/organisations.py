from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from services.cards.api.deps import Caller, reading
from services.cards.api.idempotency import Idempotent
from services.cards.domain.access import Role, require_role
from services.cards.repository import organisations
from services.cards.schemas import NewOrganisation
from shared.events import cards as ev
from shared.ids import uuid7

router = APIRouter(tags=["organisations"])


@router.post("/organisations", status_code=201)
async def create_organisation(
    body: NewOrganisation, principal: Caller, once: Idempotent
) -> dict[str, str]:
    """A partner organisation: a referrer (OCMW, welfare council, …) or a municipal service."""
    require_role(principal, Role.PROGRAM_ADMIN)
    org_id = uuid7()
    async with once.writing() as unit:
        await organisations.insert(
            unit.conn,
            org_id,
            body.name,
            body.kind.value,
            body.contact_email,
            body.webhook_url,
            body.sub_municipality,
        )
        await unit.publish(
            ev.OrganisationRegistered(
                organisation_id=org_id,
                name=body.name,
                kind=body.kind,
                contact_email=body.contact_email,
                webhook_url=body.webhook_url,
                sub_municipality=body.sub_municipality,
            )
        )
        await unit.audit("organisation.registered", "organisation", org_id)
        return await once.answer(unit, {"id": str(org_id)})


@router.get("/organisations")
async def list_organisations(principal: Caller, request: Request) -> list[dict[str, Any]]:
    async with reading(request, principal) as unit:
        return [dict(r) for r in await organisations.all_(unit.conn)]
