"""422 answers every service API gives alike: each wrong field named with the reason, never
the value that was refused (it may be a national number, an IBAN or an address, and answers
end up in browser histories, proxies and logs)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

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


def install_validation_errors(app: FastAPI) -> None:
    """FastAPI's own 422 repeats the refused input; this one does not."""

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(exc.errors())
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)
