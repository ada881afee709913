from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from services.cards.api.deps import Caller, desk_of, pool_of, reading
from services.cards.desk.expiry import run_expiry
from services.cards.domain.access import Role, require_role
from services.cards.domain.errors import InvalidField
from services.cards.repository import audit
from shared import localtime

router = APIRouter(tags=["operations"])
MAX_AUDIT_ENTRIES = 1000


@router.post("/jobs/expiry")
async def expiry_job(
    principal: Caller,
    request: Request,
    today: Annotated[
        date | None,
        Query(description="Replays a past day (catch-up after an outage); never a future one."),
    ] = None,
) -> dict[str, Any]:
    """Runs the daily job now (it also runs by itself once a day). `today` replays a day."""
    require_role(principal, Role.OPERATOR, Role.PROGRAM_ADMIN)
    real_today = localtime.today()
    if today is not None and today > real_today:
        # Expiry is final: a future day would expire live cards and announce wrongly.
        raise InvalidField(
            "today",
            f"{today.isoformat()} lies in the future (today is {real_today.isoformat()});"
            " only a past day can be replayed",
        )
    report = await run_expiry(pool_of(request), desk_of(request), today or real_today)
    return {"expired": report.expired, "announced": report.announced}


@router.get("/audit")
async def audit_log(
    principal: Caller,
    request: Request,
    subject_id: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_ENTRIES)] = 200,
) -> list[dict[str, Any]]:
    require_role(principal, Role.OPERATOR, Role.PROGRAM_ADMIN)
    async with reading(request, principal) as unit:
        entries = [
            dict(r) for r in await audit.entries(unit.conn, subject_id=subject_id, limit=limit)
        ]
    if principal.role is Role.OPERATOR:
        # Operators run the system; what referrers wrote about a person (a card's note, why
        # an eligibility was extended) is not theirs to read: who did what, when, stays.
        for entry in entries:
            entry["reason_withheld"] = entry.pop("reason") is not None
            entry["reason"] = None
    return entries
