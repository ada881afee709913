"""Bad input to the notifications API gets a 422 that names the field and says what is
wrong, without echoing what was sent (an operator may paste a name, an address or a
national number into the wrong field), and before anything is stored or run. Input that
would be silently ignored (a typo in an opt-out, half a period) is refused too."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from services.notifications.api import notifications_router
from shared.http_errors import install_error_answers

TOKEN = "test-operations-token-of-40-characters!!"
PERSONAL = "An Peeters 85.07.30-033.61"


class _NoDatabase:
    def acquire(self) -> Any:
        raise AssertionError("bad input must be refused before the database")


class _Jobs:
    def __init__(self) -> None:
        self.runs: list[tuple[str, tuple[date, date] | None]] = []

    async def run(
        self, name: str, now: datetime, period: tuple[date, date] | None = None
    ) -> dict[str, Any]:
        self.runs.append((name, period))
        return {"job": name, "notifications": 0}


@pytest.fixture
def jobs() -> _Jobs:
    return _Jobs()


@pytest.fixture
async def http(jobs: _Jobs) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_answers(app)
    app.include_router(
        notifications_router(
            lambda: _NoDatabase(),  # type: ignore[arg-type, return-value]
            lambda: jobs,  # type: ignore[arg-type, return-value]
            SecretStr(TOKEN),
        )
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as client:
        yield client


def _refused(response: httpx.Response, field: str) -> str:
    assert response.status_code == 422, response.text
    body = response.json()
    assert [e["field"] for e in body["errors"]] == [field]
    assert PERSONAL not in response.text and "example.org" not in response.text
    assert isinstance(body["detail"], str) and body["detail"].startswith(f"{field}: ")
    return str(body["detail"])


async def test_a_refused_value_is_named_by_its_field_and_not_echoed(
    http: httpx.AsyncClient,
) -> None:
    person = f"holder:{uuid.uuid4()}"
    _refused(await http.get("/deliveries", params={"since": PERSONAL}), "since")
    _refused(await http.get("/deliveries", params={"status": PERSONAL}), "status")
    _refused(
        await http.put(f"/preferences/{person}", json={"channel": "an.peeters@example.org"}),
        "channel",
    )
    _refused(await http.post(f"/deliveries/{PERSONAL}/retry"), "delivery_id")
    _refused(await http.post("/jobs/letters", params={"at": PERSONAL}), "at")


async def test_an_opt_out_of_a_kind_that_does_not_exist_is_refused(
    http: httpx.AsyncClient,
) -> None:
    detail = _refused(
        await http.put(
            f"/preferences/holder:{uuid.uuid4()}",
            json={"opted_out": ["refund_paid", "refund_aproved"]},
        ),
        "opted_out.1",
    )
    assert "not a kind of notification" in detail and "refund_approved" in detail


@pytest.mark.parametrize(
    "key",
    ["holder:" + "1" * 8, "holder", "person:" + str(uuid.uuid4()), f" org:{uuid.uuid4()}"],
)
async def test_preferences_of_a_party_that_cannot_exist_are_refused(
    http: httpx.AsyncClient, key: str
) -> None:
    _refused(await http.put(f"/preferences/{key}", json={"digest": False}), "recipient")
    _refused(await http.get(f"/preferences/{key}"), "recipient")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"period_from": "2026-03-01"}, "period_to"),
        ({"period_to": "2026-03-31"}, "period_from"),
        ({"period_from": "2026-03-31", "period_to": "2026-03-01"}, "period_to"),
    ],
)
async def test_a_statement_period_is_whole_and_in_order_or_refused(
    http: httpx.AsyncClient, jobs: _Jobs, params: dict[str, str], field: str
) -> None:
    _refused(await http.post("/jobs/provider-statements", params=params), field)
    assert jobs.runs == []  # not last month's statement instead of the one asked for


async def test_a_period_for_a_job_without_one_is_refused(
    http: httpx.AsyncClient, jobs: _Jobs
) -> None:
    params = {"period_from": "2026-03-01", "period_to": "2026-03-31"}
    _refused(await http.post("/jobs/letters", params=params), "period_from")
    assert jobs.runs == []


async def test_a_whole_period_or_none_runs(http: httpx.AsyncClient, jobs: _Jobs) -> None:
    params = {"period_from": "2026-03-01", "period_to": "2026-03-31"}
    assert (await http.post("/jobs/provider-statements", params=params)).status_code == 200
    assert (await http.post("/jobs/provider-statements")).status_code == 200
    assert jobs.runs == [
        ("provider-statements", (date(2026, 3, 1), date(2026, 3, 31))),
        ("provider-statements", None),
    ]
