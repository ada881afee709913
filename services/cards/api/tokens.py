from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request

from services.cards.api.deps import Caller, writing
from services.cards.api.idempotency import Idempotent
from services.cards.desk import tokens
from services.cards.schemas import NewToken

router = APIRouter(tags=["tokens"])


@router.post("/api-tokens", status_code=201)
async def issue_token(body: NewToken, once: Idempotent) -> dict[str, Any]:
    """A bearer token for one role (and organisation or provider). Shown once (and to a
    retry with the same Idempotency-Key, kept encrypted under that key for 24 hours)."""
    async with once.writing() as unit:
        issued = await tokens.issue_token(unit, body)
        return await once.answer(
            unit,
            {"token_id": str(issued.token_id), "token": issued.token, "role": body.role.value},
        )


@router.delete("/api-tokens/{token_id}", status_code=204)
async def revoke_token(token_id: uuid.UUID, principal: Caller, request: Request) -> None:
    async with writing(request, principal) as unit:
        await tokens.revoke_token(unit, token_id)
