from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Body, Request

from services.cards.api.deps import Caller, desk_of, pool_of, reading, writing
from services.cards.api.idempotency import Idempotent
from services.cards.desk import people as desk
from services.cards.desk.imports import import_people
from services.cards.desk.privacy import erase_person, export_person
from services.cards.domain.access import Role, require_role
from services.cards.domain.errors import InvalidField
from services.cards.repository import cards, eligibilities
from services.cards.schemas import Extension, NewEligibility, NewPerson, PersonUpdate, WithReason
from shared import localtime

router = APIRouter(tags=["people"])
MAX_CSV_BYTES = 2_000_000


@router.post("/people", status_code=201)
async def register_person(body: NewPerson, once: Idempotent) -> dict[str, str]:
    # With a key too, although the national number already stops a second person: a retry
    # then gets the id instead of "already registered". The answer is only that opaque id;
    # the body, personal, is kept as a keyed hash only.
    async with once.writing() as unit:
        person_id = await desk.register_person(unit, body, localtime.today())
        return await once.answer(unit, {"id": str(person_id)})


@router.get("/people/{person_id}")
async def person_summary(
    person_id: uuid.UUID, principal: Caller, request: Request
) -> dict[str, Any]:
    """What the desk shows without opening the personal file: grants and cards."""
    async with reading(request, principal) as unit:
        person = await desk.load_person(unit, person_id, for_update=False)
        grants = await eligibilities.of_person(unit.conn, person_id)
        held = await cards.of_person(unit.conn, person_id)
    return {
        "person_id": str(person_id),
        "referrer_org_id": str(person["referrer_org_id"]),
        "sub_municipality": person["sub_municipality"],
        "channel": person["channel"],
        "language": person["language"],
        "eligibilities": [dict(g) for g in grants],
        "cards": [dict(c) for c in held],
    }


@router.patch("/people/{person_id}")
async def update_person(
    person_id: uuid.UUID, body: PersonUpdate, principal: Caller, request: Request
) -> dict[str, str]:
    async with writing(request, principal) as unit:
        await desk.update_person(unit, person_id, body)
    return {"id": str(person_id)}


@router.post("/people/{person_id}/eligibility", status_code=201)
async def grant_eligibility(
    person_id: uuid.UUID, body: NewEligibility, once: Idempotent
) -> dict[str, str]:
    async with once.writing(body.evidence_ref) as unit:
        eligibility_id = await desk.grant_eligibility(unit, person_id, body, localtime.today())
        return await once.answer(unit, {"id": str(eligibility_id)})


@router.post("/people/{person_id}/eligibility/{eligibility_id}/extension")
async def extend_eligibility(
    person_id: uuid.UUID,
    eligibility_id: uuid.UUID,
    body: Extension,
    once: Idempotent,
) -> dict[str, str]:
    async with once.writing(body.reason) as unit:
        await desk.extend_eligibility(
            unit, person_id, eligibility_id, body.eligible_until, body.reason, localtime.today()
        )
        return await once.answer(
            unit, {"id": str(eligibility_id), "eligible_until": body.eligible_until.isoformat()}
        )


@router.post("/people/import")
async def import_csv(
    principal: Caller,
    request: Request,
    csv_text: str = Body(..., media_type="text/csv"),
) -> dict[str, Any]:
    """A referrer's list as CSV (header row; comma or semicolon). Good rows are imported,
    bad rows come back with their line number, field and reason."""
    require_role(principal, Role.REFERRER, Role.PROGRAM_ADMIN)
    if len(csv_text) > MAX_CSV_BYTES:
        raise InvalidField("csv", f"larger than {MAX_CSV_BYTES} bytes; split the file")
    report = await import_people(
        pool_of(request),
        desk_of(request),
        principal,
        csv_text,
        localtime.today(),
        request.state.correlation_id,
    )
    return report.as_json()


@router.get("/people/{person_id}/export")
async def export(person_id: uuid.UUID, principal: Caller, request: Request) -> dict[str, Any]:
    """Right of access: everything held about the person, readable, as JSON."""
    async with writing(request, principal, "right of access") as unit:
        return await export_person(unit, person_id)


@router.post("/people/{person_id}/erasure")
async def erase(
    person_id: uuid.UUID, body: WithReason, principal: Caller, request: Request
) -> dict[str, str]:
    """Right to erasure: the person's key is destroyed; opaque ids, events and the ledger stay."""
    async with writing(request, principal, body.reason) as unit:
        await erase_person(unit, person_id, body.reason)
    return {"id": str(person_id), "status": "erased"}
