"""What every route needs: the caller (from the bearer token), the pool and the desk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import asyncpg
from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.cards.desk.tokens import authenticate
from services.cards.desk.unit import Desk, Unit, read_only, unit_of_work
from services.cards.domain.access import Principal

REASON_HEADER = "X-Audit-Reason"
# Declared as a security scheme so the OpenAPI document (and /docs) shows it.
_bearer = HTTPBearer(auto_error=False, description="A token from POST /api-tokens")


def pool_of(request: Request) -> asyncpg.Pool:
    pool: asyncpg.Pool = request.app.state.pool_ref()
    return pool


def desk_of(request: Request) -> Desk:
    desk: Desk = request.app.state.desk
    return desk


async def caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> Principal:
    token = credentials.credentials if credentials is not None else ""
    if not token:
        raise HTTPException(
            401,
            "authorization: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = await authenticate(
        pool_of(request), token.strip(), desk_of(request).settings.api_token_secret
    )
    if principal is None:
        raise HTTPException(
            401, "authorization: unknown or revoked token", headers={"WWW-Authenticate": "Bearer"}
        )
    return principal


Caller = Annotated[Principal, Depends(caller)]


@asynccontextmanager
async def writing(
    request: Request, principal: Principal, reason: str | None = None
) -> AsyncIterator[Unit]:
    """A unit of work for this request: its correlation id on the events and the audit line;
    the why from the body, else from the X-Audit-Reason header."""
    async with unit_of_work(
        pool_of(request),
        desk_of(request),
        principal,
        request.state.correlation_id,
        reason or request.headers.get(REASON_HEADER),
    ) as unit:
        yield unit


@asynccontextmanager
async def reading(request: Request, principal: Principal) -> AsyncIterator[Unit]:
    async with read_only(pool_of(request), desk_of(request), principal) as unit:
        yield unit
