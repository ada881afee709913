"""The operations token: one bearer secret per deployment that guards the claims and
notifications APIs. Anyone who could call them unauthenticated could learn who has the
reduced tariff (a provider knows its own check-in ids), pay out, or silence a card holder.

The health probes stay outside: orchestrators call them without credentials.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field, SecretStr

MIN_SECRET_LENGTH = 32
# The settings field each guarded service declares (e.g. CLAIMS_API_TOKEN_SECRET). No
# default: a service without it fails at start-up instead of serving anonymously.
OperationsSecret = Annotated[SecretStr, Field(min_length=MIN_SECRET_LENGTH)]

# Declared as a security scheme so the OpenAPI document (and /docs) shows it.
_bearer = HTTPBearer(auto_error=False, description="The deployment's operations token")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


class OperationsToken:
    """A FastAPI dependency: the request carries the operations token, or it gets a 401."""

    def __init__(self, secret: SecretStr) -> None:
        value = secret.get_secret_value()
        if len(value) < MIN_SECRET_LENGTH:
            # Also for callers that bypass the settings: an empty secret must not open up.
            raise ValueError(
                f"the operations token secret must be at least {MIN_SECRET_LENGTH} characters"
            )
        self._secret = value.encode()

    async def __call__(
        self,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
    ) -> None:
        token = credentials.credentials.strip() if credentials is not None else ""
        if not token:
            raise _unauthorized("authorization: send 'Authorization: Bearer <token>'")
        # Constant time: the answer's timing must not reveal how much of a guess was right.
        if not hmac.compare_digest(token.encode(), self._secret):
            raise _unauthorized("authorization: unknown token")


def protected_router(secret: SecretStr) -> APIRouter:
    """A router whose every route requires the operations token."""
    return APIRouter(dependencies=[Depends(OperationsToken(secret))])
