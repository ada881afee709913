"""An account statement's `since` and `until` without a zone are Belgian times, as the
monthly report's months are: a statement for March then holds what March's report counts
(PostgreSQL took a naive time as UTC, an hour or two later)."""

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


class _Pool:
    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[None]:
        yield None


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
