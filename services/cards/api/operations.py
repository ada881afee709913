from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Request

from services.cards.api.deps import Caller, desk_of, pool_of, reading
from services.cards.desk.expiry import run_expiry
from services.cards.domain.access import Role, require_role
from services.cards.repository import audit

router = APIRouter(tags=["operations"])


@router.post("/jobs/expiry")
async def expiry_job(
    principal: Caller, request: Request, today: date | None = None
) -> dict[str, Any]:
    """Runs the daily job now (it also runs by itself once a day). `today` replays a day."""
    require_role(principal, Role.OPERATOR, Role.PROGRAM_ADMIN)
    report = await run_expiry(pool_of(request), desk_of(request), today or date.today())
    return {"expired": report.expired, "announced": report.announced}


@router.get("/audit")
async def audit_log(
    principal: Caller, request: Request, subject_id: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    require_role(principal, Role.OPERATOR, Role.PROGRAM_ADMIN)
    async with reading(request, principal) as unit:
        return [
            dict(r)
            for r in await audit.entries(unit.conn, subject_id=subject_id, limit=min(limit, 1000))
        ]
