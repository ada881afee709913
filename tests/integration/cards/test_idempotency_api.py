"""Idempotency-Key on the desk's creating requests: a retried or double-clicked POST creates
once and gets the first answer again; a key reused for another request is refused; two at
once create once; without the header nothing changes; keys are forgotten after 24 hours."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx

from shared import localtime
from tests.integration.cards.conftest import Desk, grant_body, person_body

KEY = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
PROVIDER = {"name": "Zwaneberg", "sub_municipality": "Heist-Centrum", "mode": "refund"}


async def _person(client: httpx.AsyncClient, seed: int) -> str:
    created = await client.post("/people", json=person_body(seed))
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


async def _count(desk: Desk, sql: str, *args: Any) -> int:
    async with desk.pool.acquire() as conn:
        return int(await conn.fetchval(sql, *args))


async def _grants(desk: Desk, person_id: str) -> int:
    return await _count(
        desk, "SELECT count(*) FROM eligibilities WHERE person_id = $1::uuid", person_id
    )


def _grant(person_id: str, key: str | None, **overrides: Any) -> dict[str, Any]:
    return {
        "url": f"/people/{person_id}/eligibility",
        "json": grant_body(**overrides),
        "headers": {KEY: key} if key is not None else {},
    }


async def test_a_repeated_grant_creates_one_and_answers_the_same(desk: Desk) -> None:
    person_id = await _person(desk.referrer, 1)
    first = await desk.referrer.post(**_grant(person_id, "grant-7f3a"))
    again = await desk.referrer.post(**_grant(person_id, "grant-7f3a"))
    assert first.status_code == again.status_code == 201, again.text
    assert again.content == first.content
    assert REPLAYED not in first.headers and again.headers[REPLAYED] == "true"
    assert await _grants(desk, person_id) == 1
    assert len(await desk.outbox("cards.eligibility-changed.v1")) == 1
    trail = (await desk.admin.get("/audit", params={"subject_id": person_id})).json()
    assert [e["action"] for e in trail].count("eligibility.granted") == 1


async def test_the_key_reused_for_another_request_is_refused(desk: Desk) -> None:
    person_id = await _person(desk.referrer, 2)
    other_person = await _person(desk.referrer, 3)
    first = await desk.referrer.post(**_grant(person_id, "k1"))
    assert first.status_code == 201
    for request in (
        _grant(person_id, "k1", evidence_ref="dossier-2"),  # another body
        _grant(other_person, "k1"),  # another path
    ):
        refused = await desk.referrer.post(**request)
        assert refused.status_code == 422, refused.text
        [error] = refused.json()["errors"]
        assert error["field"] == KEY
        assert "already used for another request" in error["reason"]
        assert REPLAYED not in refused.headers
    assert await _grants(desk, person_id) == 1 and await _grants(desk, other_person) == 0
    # The key belongs to its caller: another token's same key is another key.
    admin = await desk.admin.post(**_grant(other_person, "k1"))
    assert admin.status_code == 201 and REPLAYED not in admin.headers


async def _lock_waits(desk: Desk) -> int:
    return await _count(
        desk,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'",
    )


async def test_two_at_once_with_one_key_create_one(desk: Desk) -> None:
    person_id = await _person(desk.referrer, 4)
    async with desk.pool.acquire() as conn, conn.transaction():
        # Holding the person makes both requests be under way before either can finish.
        await conn.execute("SELECT 1 FROM people WHERE person_id = $1::uuid FOR UPDATE", person_id)
        both = asyncio.gather(
            desk.referrer.post(**_grant(person_id, "double-click")),
            desk.referrer.post(**_grant(person_id, "double-click")),
        )
        for _ in range(1000):
            if await _lock_waits(desk) >= 2:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the two requests never waited together")
    one, other = await both
    assert one.status_code == other.status_code == 201, (one.text, other.text)
    assert one.content == other.content
    assert sorted(r.headers.get(REPLAYED, "") for r in (one, other)) == ["", "true"]
    assert await _grants(desk, person_id) == 1


async def test_without_the_header_nothing_changes(desk: Desk) -> None:
    person_id = await _person(desk.referrer, 5)
    first = await desk.referrer.post(**_grant(person_id, None))
    second = await desk.referrer.post(**_grant(person_id, None))
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert REPLAYED not in first.headers and REPLAYED not in second.headers
    assert await _grants(desk, person_id) == 2
    assert await _count(desk, "SELECT count(*) FROM idempotency_keys") == 0


async def test_a_wrong_key_is_refused_and_nothing_is_done(desk: Desk) -> None:
    person_id = await _person(desk.referrer, 6)
    for key in ("", "k" * 256, "sleutel\x01"):
        refused = await desk.referrer.post(**_grant(person_id, key))
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"] == KEY
    assert await _grants(desk, person_id) == 0


async def test_a_refused_request_is_not_remembered(desk: Desk) -> None:
    person_id = await _person(desk.referrer, 7)
    wrong = await desk.referrer.post(**_grant(person_id, "k", target_group="students"))
    assert wrong.status_code == 422
    corrected = await desk.referrer.post(**_grant(person_id, "k"))
    assert corrected.status_code == 201 and REPLAYED not in corrected.headers
    again = await desk.referrer.post(**_grant(person_id, "k"))
    assert again.headers[REPLAYED] == "true" and again.content == corrected.content
    assert await _grants(desk, person_id) == 1


async def test_every_creating_request_takes_a_key(desk: Desk) -> None:
    """Each route that creates (and the extension) answers a repeat from the first answer."""
    person_id = await _person(desk.referrer, 8)

    async def twice(url: str, **kwargs: Any) -> httpx.Response:
        headers = {KEY: f"key for {url}"}
        first = await desk.admin.post(url, headers=headers, **kwargs)
        again = await desk.admin.post(url, headers=headers, **kwargs)
        assert first.status_code in (200, 201), (url, first.text)
        assert (again.status_code, again.content) == (first.status_code, first.content), url
        assert again.headers[REPLAYED] == "true", url
        return first

    await twice("/organisations", json={"name": "Welzijnsraad", "kind": "welfare_council"})
    assert await _count(desk, "SELECT count(*) FROM organisations") == 2  # the fixture's + 1
    provider = (await twice("/providers", json=PROVIDER)).json()["id"]
    await twice(f"/providers/{provider}/devices")
    assert await _count(desk, "SELECT count(*) FROM devices") == 1
    await twice("/people", json=person_body(9, referrer_org_id=desk.org_id))
    grant = (await twice(f"/people/{person_id}/eligibility", json=grant_body())).json()["id"]
    until = (localtime.today() + timedelta(days=400)).isoformat()
    extension = {"eligible_until": until, "reason": "renewed certificate"}
    extended = await twice(f"/people/{person_id}/eligibility/{grant}/extension", json=extension)
    assert extended.status_code == 200
    card = (await twice(f"/people/{person_id}/cards")).json()["card_id"]
    await twice(f"/cards/{card}/replace", json={"reason": "lost"})
    assert await _count(desk, "SELECT count(*) FROM cards") == 2  # the card and its replacement
    await twice("/api-tokens", json={"label": "balie", "role": "finance"})
    assert await _count(desk, "SELECT count(*) FROM api_tokens WHERE role = 'finance'") == 1


async def test_the_kept_answer_is_not_readable_in_the_database(desk: Desk) -> None:
    """The device's private key and the grant's evidence are kept nowhere in clear."""
    provider = (await desk.admin.post("/providers", json=PROVIDER)).json()["id"]
    key = "device-for-the-front-desk"
    device = await desk.admin.post(f"/providers/{provider}/devices", headers={KEY: key})
    again = await desk.admin.post(f"/providers/{provider}/devices", headers={KEY: key})
    assert again.json()["private_key"] == device.json()["private_key"]
    person_id = await _person(desk.referrer, 10)
    await desk.referrer.post(**_grant(person_id, key, evidence_ref="leefloon-attest-2291"))
    async with desk.pool.acquire() as conn:
        rows = [
            r["line"] for r in await conn.fetch("SELECT t::text AS line FROM idempotency_keys t")
        ]
    assert len(rows) == 2
    for secret in (
        device.json()["private_key"],
        key,
        "leefloon-attest-2291",
        device.json()["device_id"],
    ):
        assert not any(secret in row or secret.encode().hex() in row for row in rows), secret


async def test_keys_are_forgotten_after_24_hours(desk: Desk) -> None:
    person_id = await _person(desk.referrer, 11)
    assert (await desk.referrer.post(**_grant(person_id, "old"))).status_code == 201
    assert (await desk.referrer.post(**_grant(person_id, "recent"))).status_code == 201
    async with desk.pool.acquire() as conn:
        # "old" was sent first.
        await conn.execute(
            "UPDATE idempotency_keys SET created_at = CASE"
            " WHEN created_at = (SELECT min(created_at) FROM idempotency_keys)"
            " THEN now() - interval '24 hours 1 minute' ELSE now() - interval '23 hours' END"
        )
    # Past 24 hours the key is new again: another body is accepted, and creates.
    reused = await desk.referrer.post(**_grant(person_id, "old", evidence_ref="dossier-9"))
    assert reused.status_code == 201 and REPLAYED not in reused.headers
    recent = await desk.referrer.post(**_grant(person_id, "recent"))
    assert recent.headers[REPLAYED] == "true"
    assert await _grants(desk, person_id) == 3
    # The daily job deletes what is older than 24 hours, and only that.
    async with desk.pool.acquire() as conn:
        await conn.execute(
            "UPDATE idempotency_keys SET created_at = now() - interval '25 hours'"
            " WHERE created_at > now() - interval '1 hour'"
        )
    operator = desk.client(await desk.token("operator"))
    assert (await operator.post("/jobs/expiry")).status_code == 200
    assert await _count(desk, "SELECT count(*) FROM idempotency_keys") == 1
    await operator.aclose()
