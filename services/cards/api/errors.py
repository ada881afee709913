"""Refusals as HTTP: 404 unknown, 403 not yours, 409 clashes with the current state,
422 a field is wrong (named, with the reason; the rejected value is never echoed)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.cards.domain.errors import Conflict, Forbidden, InvalidField, NotFound, Refused
from shared.http_errors import install_error_answers

_STATUS: tuple[tuple[type[Refused], int], ...] = (
    (NotFound, 404),
    (Forbidden, 403),
    (Conflict, 409),
    (InvalidField, 422),
)


def _status_of(exc: Refused) -> int:
    return next((status for kind, status in _STATUS if isinstance(exc, kind)), 400)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Refused)
    async def refused(_request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.message, "errors": [exc.as_error()]}, status_code=_status_of(exc)
        )

    install_error_answers(app)
