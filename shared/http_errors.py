"""Refusals every service API gives alike: a 422 names each wrong field with the reason,
never the value that was refused (it may be a national number, an IBAN or an address, and
answers end up in browser histories, proxies and logs); a 503 with Retry-After when the
database does not answer, so that a client (the desk, `vtp demo`, a partner) tries again
instead of taking a 500 for a bug."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from shared.logging import get_logger

log = get_logger(__name__)

# Where a field came from is FastAPI's bookkeeping, not the field's name: `person_id`, not
# `path.person_id`.
_SOURCES = frozenset({"body", "query", "path"})


def field_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Pydantic's (or FastAPI's) errors as {field, reason}, without the rejected input."""
    described = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part not in _SOURCES]
        described.append({"field": ".".join(location) or "body", "reason": _reason(error)})
    return described


def _reason(error: Any) -> str:
    kind, ctx = error.get("type"), error.get("ctx") or {}
    limit = ctx.get("min_length" if kind == "too_short" else "max_length")
    if kind in ("too_short", "too_long") and isinstance(error.get("input"), str) and limit:
        # A text's length checked after its own validator (a name, an optional plain text):
        # pydantic words it for collections ("items after validation").
        bound = "least" if kind == "too_short" else "most"
        return f"String should have at {bound} {limit} character{'' if limit == 1 else 's'}"
    return str(error.get("msg", "is not valid")).removeprefix("Value error, ")


# The database went away under a request (a restart, a failover, the network): nothing is
# wrong with the request, and the unit of work rolled back with the connection.
DATABASE_AWAY: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,  # refused, cannot connect now, too many connections
    asyncpg.InterfaceError,  # the connection closed under the query
    ConnectionRefusedError,
    ConnectionResetError,
)
RETRY_AFTER_S = 5


def install_error_answers(app: FastAPI) -> None:
    """FastAPI's own 422 repeats the refused input, and a lost database is its 500."""

    async def database_away(request: Request, exc: Exception) -> JSONResponse:
        log.warning(
            "request refused: the database did not answer",
            path=request.url.path,
            error=type(exc).__name__,
        )
        return JSONResponse(
            {"detail": f"the database did not answer ({type(exc).__name__}): try again shortly"},
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    for kind in DATABASE_AWAY:
        app.add_exception_handler(kind, database_away)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(exc.errors())
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)
