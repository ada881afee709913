"""Every service answers a refused request alike: the field by its own name (not where
FastAPI found it), the reason, and never the refused value."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from shared.http_errors import install_error_answers

PERSONAL = "85.07.30-033.61"


class _Correction(BaseModel):
    first_name: str
    year: int


def _app() -> FastAPI:
    app = FastAPI()
    install_error_answers(app)

    @app.patch("/people/{person_id}")
    async def correct(person_id: uuid.UUID, correction: _Correction, page: int = 1) -> None:
        raise AssertionError("a refused request never reaches the route")

    return app


async def _patch(path: str, body: object, page: str = "1") -> httpx.Response:
    transport = httpx.ASGITransport(app=_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://desk") as http:
        return await http.patch(path, json=body, params={"page": page})


async def test_fields_are_named_as_the_caller_knows_them_and_nothing_is_echoed() -> None:
    response = await _patch(
        f"/people/{PERSONAL}", {"first_name": "An", "year": PERSONAL}, page=PERSONAL
    )
    assert response.status_code == 422
    body = response.json()
    assert sorted(e["field"] for e in body["errors"]) == ["page", "person_id", "year"]
    assert "path." not in body["detail"] and "query." not in body["detail"]
    assert PERSONAL not in response.text


async def test_a_missing_body_is_named_as_the_body() -> None:
    response = await _patch(f"/people/{uuid.uuid4()}", None)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body"]


async def test_a_database_that_went_away_is_a_503_to_try_again_not_a_500() -> None:
    app = FastAPI()
    install_error_answers(app)

    @app.post("/people")
    async def register() -> None:
        raise asyncpg.exceptions.ConnectionDoesNotExistError(
            "connection was closed in the middle of operation"
        )

    @app.get("/cards")
    async def cards() -> None:
        raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://desk") as http:
        for response in (await http.post("/people"), await http.get("/cards")):
            assert response.status_code == 503
            assert response.headers["Retry-After"] == "5"
            assert "try again shortly" in response.json()["detail"]
            assert "127.0.0.1" not in response.text  # nothing of where the database is
