"""An account statement's `since` and `until` without a zone are Belgian times, as the
monthly report's months are: a statement for March then holds what March's report counts
(PostgreSQL took a naive time as UTC, an hour or two later). Query parameters finance gets
wrong (a range backwards, a status that does not exist) are refused, not answered empty."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from services.claims import ledger
from services.claims.api import build_app
from services.claims.policy import load_policy
from services.claims.reports import month_bounds
from services.claims.settings import DEFAULT_POLICY

TOKEN = "t" * 40
ACCOUNTS = {"bank:municipality"}


class _Conn:
    """Knows the accounts named in `ACCOUNTS`."""

    @asynccontextmanager
    async def transaction(self, **_options: object) -> AsyncIterator[None]:
        yield None

    async def fetchval(self, _query: str, account: str) -> int | None:
        return 1 if account in ACCOUNTS else None


class _Pool:
    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[_Conn]:
        yield _Conn()


async def test_times_without_a_zone_are_belgian(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[Any, ...]] = []

    async def statement(_conn: object, account: str, since: Any, until: Any) -> dict[str, Any]:
        asked.append((since, until))
        return {"account": account}

    monkeypatch.setattr(ledger, "statement", statement)
    app = build_app(lambda: _Pool(), load_policy(DEFAULT_POLICY), SecretStr(TOKEN))  # type: ignore[arg-type, return-value]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://claims",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as http:
        march = {"since": "2026-03-01T00:00:00", "until": "2026-04-01T00:00:00"}
        zoned = {"since": "2026-03-01T00:00:00Z"}
        for params in (march, zoned):
            response = await http.get("/ledger/accounts/bank:municipality/statement", params=params)
            assert response.status_code == 200, response.text
    assert asked[0] == month_bounds("2026-03")
    assert asked[1] == (datetime(2026, 3, 1, tzinfo=UTC), None)


def _client() -> httpx.AsyncClient:
    app = build_app(lambda: _Pool(), load_policy(DEFAULT_POLICY), SecretStr(TOKEN))  # type: ignore[arg-type, return-value]
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://claims",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )


async def test_a_statement_that_ends_before_it_starts_is_refused() -> None:
    async with _client() as http:
        response = await http.get(
            "/ledger/accounts/bank:municipality/statement",
            params={"since": "2026-04-01T00:00:00", "until": "2026-03-01T00:00:00"},
        )
    assert response.status_code == 422
    assert "must come after since" in response.json()["detail"]


@pytest.mark.parametrize("status", ["paid", "Settled", ""])
async def test_an_unknown_payment_status_is_refused_not_an_empty_list(status: str) -> None:
    async with _client() as http:
        response = await http.get("/payments", params={"status": status})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "status"
    assert "settled" in error["reason"]  # the statuses there are, not the one refused
    assert f"'{status}'" not in response.text


async def test_an_account_that_does_not_exist_is_not_found() -> None:
    async with _client() as http:
        response = await http.get("/ledger/accounts/payable:holder:typo/statement")
    assert response.status_code == 404
    assert "payable:holder:typo" in response.json()["detail"]
