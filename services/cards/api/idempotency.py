"""`Idempotency-Key` on the desk's creating requests: a browser that retries a POST, or a
social worker who clicks twice, gets the first answer again instead of a second grant,
device, card or token.

A route opts in by taking `Idempotent` and writing through it:

    async with once.writing(reason) as unit:
        ...
        return await once.answer(unit, {"id": ...})

The key is claimed by the first statement of the request's own transaction and the answer
is stored by that transaction, so the effect and the remembered answer commit together or
not at all: a refused or failed request leaves nothing behind and may be sent again with the
same key. A second request with a key whose first request is still running waits for it on
the key's primary key, then replays its answer (or, if it rolled back, is processed itself).

Kept per (caller, key) for 24 hours from the first request, then forgotten (the daily job
deletes the rows): a keyed hash of the key, a keyed hash of method, path and body (bodies
hold personal data), the status, and the answer encrypted under a key derived from the
master key and the Idempotency-Key itself. Answers carry device private keys and bearer
tokens that are otherwise never stored: a copy of the database alone cannot read them."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, TypeVar

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import Depends, FastAPI, Header, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.routing import APIRoute

from services.cards.api.deps import Caller, writing
from services.cards.desk.unit import Unit
from services.cards.domain.access import Principal
from services.cards.domain.idempotency import (
    HEADER,
    MAX_KEY_LENGTH,
    RETENTION,
    check_same_request,
    parse_key,
)
from services.cards.repository import idempotency as keys

REPLAYED_HEADER = "Idempotent-Replayed"
T = TypeVar("T")


class Replayed(Exception):
    """The request was answered before: that answer is sent again, nothing is done twice."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


class Unanswered(RuntimeError):
    """A route claimed a key but stored no answer: a bug, never committed."""


def caller_identity(principal: Principal) -> str:
    # The token's id, not its label (labels repeat); the bootstrap administrator has none.
    return f"token {principal.token_id}" if principal.token_id else principal.label


def _digest(master_key_hex: str, purpose: bytes, *parts: bytes) -> bytes:
    """Keyed with the master key: an unkeyed hash of a guessable key or body (a national
    number) could be confirmed by guessing. Each part length-prefixed: no two requests
    hash alike by moving bytes between path and body."""
    digest = hashlib.blake2b(key=bytes.fromhex(master_key_hex), person=purpose, digest_size=32)
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.digest()


def _rendered(content: object) -> bytes:
    # As FastAPI renders a route's JSON answer, so that a replay is the same bytes.
    return json.dumps(
        jsonable_encoder(content), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    ).encode()


@dataclass
class _Claim:
    caller: str
    key_hash: bytes
    cipher: AESGCM
    answered: bool = False


class IdempotentRequest:
    """One request to a route that accepts an Idempotency-Key (with or without one)."""

    def __init__(
        self, request: Request, principal: Principal, key: str | None, body: bytes
    ) -> None:
        self._request = request
        self._principal = principal
        self._key = key
        self._body = body
        self._claim: _Claim | None = None

    @asynccontextmanager
    async def writing(self, reason: str | None = None) -> AsyncIterator[Unit]:
        """The request's unit of work (api.deps.writing), with the key claimed first."""
        async with writing(self._request, self._principal, reason) as unit:
            if self._key is not None:
                await self._claim_key(unit, self._key)
            yield unit
            if self._claim is not None and not self._claim.answered:
                raise Unanswered("a route that claims an Idempotency-Key must store its answer")

    async def answer(self, unit: Unit, content: T) -> T:
        """Stores the answer in the request's transaction (with a key); returns it as it is."""
        if self._claim is not None:
            body = _rendered(content)
            nonce = os.urandom(12)
            sealed = nonce + self._claim.cipher.encrypt(nonce, body, self._claim.key_hash)
            await keys.answer(
                unit.conn, self._claim.caller, self._claim.key_hash, self._status(), sealed
            )
            self._claim.answered = True
        return content

    async def _claim_key(self, unit: Unit, key: str) -> None:
        master = unit.desk.settings.master_key
        caller = caller_identity(self._principal)
        key_hash = _digest(master, b"vtp-idem-key", caller.encode(), key.encode())
        cipher = AESGCM(_digest(master, b"vtp-idem-answer", caller.encode(), key.encode()))
        fingerprint = _digest(
            master,
            b"vtp-idem-request",
            self._request.method.encode(),
            self._request.url.path.encode(),
            self._body,
        )
        stored = await keys.claim(unit.conn, caller, key_hash, fingerprint, RETENTION)
        if stored is None:
            self._claim = _Claim(caller, key_hash, cipher)
            return
        check_same_request(bytes(stored["request_hash"]), fingerprint)
        response = bytes(stored["response"])
        raise Replayed(stored["status"], cipher.decrypt(response[:12], response[12:], key_hash))

    def _status(self) -> int:
        route = self._request.scope.get("route")
        return route.status_code if isinstance(route, APIRoute) and route.status_code else 200


async def idempotent_request(
    request: Request,
    principal: Caller,
    # Declared for the OpenAPI document; read below with all its values, to refuse two.
    _key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            description=f"Optional, 1 to {MAX_KEY_LENGTH} printable ASCII characters, new for"
            " each new request (a UUID will do). Sent again by the same caller with the same"
            " method, path and body within 24 hours, the first answer is returned again"
            f" (with `{REPLAYED_HEADER}: true`) and nothing is done twice; with another path"
            " or body it is refused (422). A request that is refused is not remembered: it"
            " may be corrected and sent with the same key. Keys are forgotten 24 hours after"
            " their first request.",
        ),
    ] = None,
) -> IdempotentRequest:
    key = parse_key(request.headers.getlist(HEADER))
    body = await request.body() if key is not None else b""
    return IdempotentRequest(request, principal, key, body)


Idempotent = Annotated[IdempotentRequest, Depends(idempotent_request)]


def install_replay_handler(app: FastAPI) -> None:
    @app.exception_handler(Replayed)
    async def replay(_request: Request, exc: Replayed) -> Response:
        return Response(
            exc.body,
            status_code=exc.status,
            media_type="application/json",
            headers={REPLAYED_HEADER: "true"},
        )
