"""The operations token guards every route of the claims and notifications APIs but the
health probes and the API docs; a service without a secret does not start."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr, ValidationError

from services.claims.api import build_app
from services.claims.policy import load_policy
from services.claims.settings import DEFAULT_POLICY, ClaimsSettings
from services.notifications.api import notifications_router
from services.notifications.settings import NotificationsSettings
from shared.api_auth import OperationsToken, protected_router
from shared.http import health_router

TOKEN = "t" * 40
OPEN_PATHS = {"/health/live", "/health/ready"}


def _no_pool() -> Any:
    raise AssertionError("a refused request must not reach the database")


def _app() -> FastAPI:
    app = FastAPI()
    app.include_router(health_router(_no_pool))
    api = protected_router(SecretStr(TOKEN))

    @api.get("/secret")
    async def secret() -> dict[str, str]:
        return {"ok": "yes"}

    app.include_router(api)
    return app


def _client(app: FastAPI, headers: dict[str, Any] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers
    )


async def test_the_right_token_is_let_in() -> None:
    async with _client(_app(), {"Authorization": f"Bearer {TOKEN}"}) as http:
        response = await http.get("/secret")
    assert response.status_code == 200
    assert response.json() == {"ok": "yes"}


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        (None, "authorization: send 'Authorization: Bearer <token>'"),
        ("Bearer ", "authorization: send 'Authorization: Bearer <token>'"),
        (f"Basic {TOKEN}", "authorization: send 'Authorization: Bearer <token>'"),
        ("Bearer wrong", "authorization: unknown token"),
        (f"Bearer {TOKEN}x", "authorization: unknown token"),
        (f"Bearer {TOKEN[:-1]}", "authorization: unknown token"),
        ("Bearer tökén".encode("latin-1"), "authorization: unknown token"),
    ],
)
async def test_a_missing_or_wrong_token_gets_401(
    authorization: str | bytes | None, detail: str
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else None
    async with _client(_app(), headers) as http:
        response = await http.get("/secret")
    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_health_and_docs_stay_open() -> None:
    async with _client(_app()) as http:
        assert (await http.get("/health/live")).status_code == 200
        assert (await http.get("/openapi.json")).status_code == 200
        assert (await http.get("/docs")).status_code == 200


@pytest.mark.parametrize("secret", ["", "short", " " * 5])
def test_a_short_or_empty_secret_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="at least 32 characters"):
        OperationsToken(SecretStr(secret))


def _claims_app() -> FastAPI:
    return build_app(_no_pool, load_policy(DEFAULT_POLICY), SecretStr(TOKEN))


def _notifications_app() -> FastAPI:
    app = FastAPI()
    app.include_router(health_router(_no_pool))
    app.include_router(notifications_router(_no_pool, _no_pool, SecretStr(TOKEN)))
    return app


@pytest.mark.parametrize("make", [_claims_app, _notifications_app])
async def test_every_service_route_but_health_needs_the_token(
    make: Callable[[], FastAPI],
) -> None:
    app = make()
    # Every route the app documents, so a route added later is checked too.
    routes = [
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path not in OPEN_PATHS
        for method in operations
    ]
    assert len(routes) >= 7
    async with _client(app) as http:
        for method, template in routes:
            path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), template)
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                response = await http.request(method, path, headers=headers)
                assert response.status_code == 401, (method, template, response.text)
                assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_the_outcome_of_a_checkin_is_not_told_without_the_token() -> None:
    """A provider knows its own check-in ids: the answer would tell it who has the reduced
    tariff."""
    async with _client(_claims_app()) as http:
        response = await http.get(f"/claims/by-checkin/{uuid.uuid4()}")
    assert response.status_code == 401
    assert response.json() == {"detail": "authorization: send 'Authorization: Bearer <token>'"}


@pytest.mark.parametrize(
    ("settings", "prefix"),
    [(ClaimsSettings, "CLAIMS_"), (NotificationsSettings, "NOTIFICATIONS_")],
)
def test_a_service_without_a_token_secret_does_not_start(
    settings: type[ClaimsSettings | NotificationsSettings],
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv(f"{prefix}DATABASE_URL", "postgresql://u:pw@db/x")
    monkeypatch.delenv(f"{prefix}API_TOKEN_SECRET", raising=False)
    with pytest.raises(ValidationError, match="api_token_secret") as missing:
        settings()
    assert "pw@db" not in str(missing.value)  # a start-up error does not echo settings
    monkeypatch.setenv(f"{prefix}API_TOKEN_SECRET", "too-short")
    with pytest.raises(ValidationError, match="api_token_secret") as short:
        settings()
    assert "too-short" not in str(short.value)
    monkeypatch.setenv(f"{prefix}API_TOKEN_SECRET", TOKEN)
    assert settings().api_token_secret.get_secret_value() == TOKEN
    assert TOKEN not in repr(settings())


@pytest.mark.parametrize("month", ["0000-01", "9999-12", "2026-13", "26-01"])
async def test_a_report_month_out_of_range_is_refused_before_the_database(month: str) -> None:
    async with _client(_claims_app(), {"Authorization": f"Bearer {TOKEN}"}) as http:
        response = await http.get("/reports/monthly", params={"month": month})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["month"]
    assert month not in response.text


@pytest.mark.parametrize("period", ["2026-13", "26", "1999", "2026-03-01"])
async def test_a_usage_period_out_of_range_is_refused_before_the_database(period: str) -> None:
    async with _client(_claims_app(), {"Authorization": f"Bearer {TOKEN}"}) as http:
        response = await http.get("/reports/usage", params={"period": period})
    assert response.status_code == 422
    assert response.json()["detail"] == "period: expected a year (2026) or a month (2026-03)"
