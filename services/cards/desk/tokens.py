"""API tokens: random bearer secrets, kept only as SHA-256 (they carry 256 bits of entropy,
so a fast hash is enough). The bootstrap administrator's token comes from settings."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

import asyncpg

from services.cards.desk.unit import Unit
from services.cards.domain.access import Principal, Role, require_role
from services.cards.domain.errors import InvalidField, NotFound
from services.cards.repository import organisations, providers, tokens
from services.cards.schemas import NewToken
from shared.ids import uuid7

TOKEN_PREFIX = "vtp_"  # noqa: S105 (a prefix, not a secret)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token_id: uuid.UUID
    token: str


async def issue_token(unit: Unit, body: NewToken) -> IssuedToken:
    require_role(unit.principal, Role.PROGRAM_ADMIN)
    if body.role is Role.REFERRER and (
        body.organisation_id is None
        or not await organisations.exists(unit.conn, body.organisation_id)
    ):
        raise InvalidField("organisation_id", "a referrer token needs a known organisation")
    if body.role is Role.PROVIDER_ADMIN and (
        body.provider_id is None or await providers.get(unit.conn, body.provider_id) is None
    ):
        raise InvalidField("provider_id", "a provider administrator token needs a known provider")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = uuid7()
    await tokens.insert(
        unit.conn,
        token_id=token_id,
        token_hash=token_digest(token),
        label=body.label,
        role=body.role.value,
        organisation_id=body.organisation_id if body.role is Role.REFERRER else None,
        provider_id=body.provider_id if body.role is Role.PROVIDER_ADMIN else None,
        created_by=unit.principal.label,
    )
    await unit.audit("token.issued", "token", token_id, f"role {body.role.value}")
    return IssuedToken(token_id, token)


async def revoke_token(unit: Unit, token_id: uuid.UUID) -> None:
    require_role(unit.principal, Role.PROGRAM_ADMIN)
    if not await tokens.revoke(unit.conn, token_id):
        raise NotFound(f"token: {token_id} does not exist or was already revoked")
    await unit.audit("token.revoked", "token", token_id)


BOOTSTRAP = Principal(label="bootstrap-admin", role=Role.PROGRAM_ADMIN)


async def authenticate(
    conn: asyncpg.Pool, token: str, bootstrap_secret: str | None
) -> Principal | None:
    if bootstrap_secret and hmac.compare_digest(
        token_digest(token), token_digest(bootstrap_secret)
    ):
        return BOOTSTRAP
    async with conn.acquire() as c:
        row = await tokens.find_live(c, token_digest(token))
    if row is None:
        return None
    return Principal(
        label=row["label"],
        role=Role(row["role"]),
        token_id=row["token_id"],
        organisation_id=row["organisation_id"],
        provider_id=row["provider_id"],
    )
