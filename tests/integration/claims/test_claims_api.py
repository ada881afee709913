"""The claims API on a real PostgreSQL: what `GET /claims/by-checkin` answers for a check-in
refused before it was judged or waiting for its device, and what `GET /stats` counts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import SecretStr

from services.claims import ledger, parking
from services.claims.api import build_app
from services.claims.checkins import CheckInHandler
from shared import topics
from shared.consumer import Incoming, decode
from shared.deadletter import SourceRecord
from shared.events.checkins import CheckInRecorded
from shared.outbox import headers_from_json
from tests.integration.claims import scenario
from vtp.device.signer import DeviceIdentity

pytestmark = pytest.mark.integration

TOKEN = "o" * 40


@dataclass
class Claims:
    pool: asyncpg.Pool
    world: scenario.World
    http: httpx.AsyncClient

    def scan(
        self, device: DeviceIdentity, activity: int, minutes_ago: int = 5, card: int = 1
    ) -> Incoming[CheckInRecorded]:
        """A check-in on a card (the senior card unless said), as the consumer gets it."""
        envelope, checkin = device.check_in(
            card_number=self.world.card_numbers[card],
            activity=scenario.ACTIVITIES[activity],
            price_cents=4500,
            occurred_at=scenario.NOW - timedelta(minutes=minutes_ago),
        )
        return self.incoming(envelope, checkin)

    def incoming(self, envelope: Any, checkin: CheckInRecorded) -> Incoming[CheckInRecorded]:
        return Incoming(envelope, checkin, self.world.record(envelope, checkin))

    async def judge(self, *batch: Incoming[CheckInRecorded]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await CheckInHandler(scenario.policy(), lambda: scenario.NOW)(conn, list(batch))

    async def outcome(self, checkin_id: uuid.UUID) -> httpx.Response:
        return await self.http.get(f"/claims/by-checkin/{checkin_id}")


@pytest.fixture
async def claims(database: str) -> AsyncIterator[Claims]:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=4)
    try:
        await scenario.prepare(pool)
        world = await scenario.build_world(pool, holders=2)
        app = build_app(lambda: pool, scenario.policy(), SecretStr(TOKEN))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://claims",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as http:
            yield Claims(pool, world, http)
    finally:
        await pool.close()


async def test_a_checkin_refused_before_judging_has_that_as_its_outcome(claims: Claims) -> None:
    """A check-in that failed authentication had "no outcome yet" for ever."""
    genuine = claims.scan(claims.world.devices[0], activity=0)
    forged = genuine.payload.model_copy(update={"price_cents": 90_000})
    await claims.judge(claims.incoming(genuine.envelope, forged))

    response = await claims.outcome(genuine.payload.checkin_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["outcome"] == "not_authenticated"
    assert (body["reason"], body["detail"]) == (
        "bad_signature",
        "signature does not match the device's key",
    )
    assert body["claim_id"] is None and body["amount_cents"] == 0
    assert [r["reason"] for r in body["refused"]] == ["bad_signature"]
    assert body["refused"][0]["event_id"] == str(genuine.envelope.id)

    # The forgery did not take the check-in's id: the genuine one is judged, and is the answer.
    await claims.judge(genuine)
    body = (await claims.outcome(genuine.payload.checkin_id)).json()
    assert (body["outcome"], body["reason"]) == ("approved", None)
    assert body["claim_id"] is not None and body["amount_cents"] > 0


async def test_a_checkin_waiting_for_its_device_says_so_and_since_when(claims: Claims) -> None:
    provider = claims.world.devices[0].provider_id
    unknown = DeviceIdentity(uuid.uuid4(), provider, Ed25519PrivateKey.generate())
    waiting = claims.scan(unknown, activity=0)
    await claims.judge(waiting)
    parked_at: datetime = await claims.pool.fetchval("SELECT parked_at FROM parked_checkins")

    response = await claims.outcome(waiting.payload.checkin_id)
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert f"waits for the registration of its device {unknown.device_id}" in detail
    assert f"since {parked_at.isoformat()}" in detail
    expires = parked_at + parking.keep_for(scenario.policy())
    assert f"refused as unknown_device if it has not come by {expires.isoformat()}" in detail

    # It never came: refused as unknown_device, and answered as such.
    await claims.pool.execute("UPDATE parked_checkins SET parked_at = now() - interval '32 days'")
    async with claims.pool.acquire() as conn, conn.transaction():
        assert await parking.expire(conn, parking.keep_for(scenario.policy())) == 1
    response = await claims.outcome(waiting.payload.checkin_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["outcome"], body["reason"]) == ("not_authenticated", "unknown_device")
    assert f"device {unknown.device_id} was never registered" in body["detail"]
    stats = (await claims.http.get("/stats")).json()
    assert stats["unauthenticated"] == [{"reason": "unknown_device", "n": 1}]
    assert stats["decided"] == stats["rejected"] == 1


async def test_a_checkin_waiting_for_its_card_says_so_and_ends_as_unknown_card(
    claims: Claims,
) -> None:
    """A card number claims has no card for: its CardIssued may still come (parking.py).
    Until it does, the answer says so (without the number); if it never does, the check-in
    is rejected as unknown_card, as it was at once before."""
    envelope, checkin = claims.world.devices[0].check_in(
        card_number=scenario.UNKNOWN_CARD,
        activity=scenario.ACTIVITIES[0],
        price_cents=4500,
        occurred_at=scenario.NOW - timedelta(minutes=5),
    )
    await claims.judge(claims.incoming(envelope, checkin))
    parked_at: datetime = await claims.pool.fetchval("SELECT parked_at FROM parked_checkins")

    response = await claims.outcome(checkin.checkin_id)
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "waits for its card, which claims does not know" in detail
    assert f"since {parked_at.isoformat()}" in detail
    expires = parked_at + parking.keep_for(scenario.policy())
    assert f"rejected as unknown_card if it has not come by {expires.isoformat()}" in detail
    assert scenario.UNKNOWN_CARD not in response.text
    stats = (await claims.http.get("/stats")).json()
    assert stats["decided"] == stats["checkins_parked"] == 0  # what waits for a device
    assert stats["checkins_awaiting_card"] == 1

    # It never came: put back with its wait over, and judged as before.
    await claims.pool.execute("UPDATE parked_checkins SET parked_at = now() - interval '32 days'")
    async with claims.pool.acquire() as conn, conn.transaction():
        assert await parking.expire(conn, parking.keep_for(scenario.policy())) == 1
    copy = await claims.pool.fetchrow(
        "SELECT key, headers, payload FROM outbox WHERE topic = $1", topics.CHECKIN_RECORDED.name
    )
    assert copy is not None
    record = SourceRecord(
        topics.CHECKIN_RECORDED.name,
        0,
        1,
        copy["key"],
        copy["payload"],
        headers_from_json(copy["headers"]),
    )
    decoded = decode(record, {record.topic: topics.CHECKIN_RECORDED})
    assert isinstance(decoded, Incoming)
    await claims.judge(decoded)
    response = await claims.outcome(checkin.checkin_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["outcome"], body["reason"]) == ("rejected", "unknown_card")
    stats = (await claims.http.get("/stats")).json()
    assert stats["decided"] == stats["rejected"] == 1 and stats["checkins_awaiting_card"] == 0


async def test_a_checkin_waiting_for_a_new_key_of_its_device_says_which(claims: Claims) -> None:
    known = claims.world.devices[0]
    rotated = DeviceIdentity(
        known.device_id, known.provider_id, Ed25519PrivateKey.generate(), key_id=2
    )
    waiting = claims.scan(rotated, activity=0)
    await claims.judge(waiting)

    response = await claims.outcome(waiting.payload.checkin_id)
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert f"signed with key 2 of device {known.device_id}" in detail
    assert "waits for that key's registration (claims knows key 1), since " in detail


async def test_a_checkin_claims_never_saw_is_told_apart(claims: Claims) -> None:
    checkin_id = uuid.uuid4()
    response = await claims.outcome(checkin_id)
    assert response.status_code == 404
    assert response.json()["detail"] == (
        f"no outcome for check-in {checkin_id}: it has not reached claims or is not judged"
        " yet (a message claims could not read is only in the dead letters)"
    )


async def test_stats_count_the_claims_that_stand_and_the_reversed_apart(claims: Claims) -> None:
    """`approved_cents` still counted a claim its provider had cancelled."""
    kept, cancelled = (claims.scan(claims.world.devices[0], activity=a) for a in (0, 1))
    await claims.judge(kept, cancelled)
    amounts = {
        r["checkin_id"]: (r["claim_id"], int(r["amount_cents"]))
        for r in await claims.pool.fetch(
            "SELECT checkin_id, claim_id, amount_cents FROM claims WHERE outcome <> 'rejected'"
        )
    }
    assert len(amounts) == 2
    async with claims.pool.acquire() as conn, conn.transaction():
        claim_id = amounts[cancelled.payload.checkin_id][0]
        await scenario.cancel_claim(
            conn, claims.world, claims.world.card_numbers[1], claim_id, scenario.policy()
        )

    standing = (await claims.outcome(kept.payload.checkin_id)).json()
    reversed_claim = (await claims.outcome(cancelled.payload.checkin_id)).json()
    assert (standing["reversed_at"], standing["reversal_reason"]) == (None, None)
    assert reversed_claim["outcome"] == "approved"  # its outcome, and then its reversal
    assert reversed_claim["reversed_at"] is not None
    assert reversed_claim["reversal_reason"] == "activity_cancelled"

    stats = (await claims.http.get("/stats")).json()
    assert stats["approved"] == 2  # both were approved...
    assert stats["approved_cents"] == amounts[kept.payload.checkin_id][1]  # ...one stands
    assert stats["reversed"] == 1
    assert stats["reversed_cents"] == amounts[cancelled.payload.checkin_id][1]
    # What stands is what the ledger still owes: the payables the claims credited.
    async with claims.pool.acquire() as conn:
        balances = await ledger.trial_balance(conn)
    owed = -sum(b for account, b in balances.items() if account.startswith("payable:"))
    assert stats["approved_cents"] == owed


async def test_stats_are_read_in_one_snapshot(
    claims: Claims, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read one after the other, the outcomes and the ledger were of different moments: a
    check-in judged meanwhile showed in the ledger's claims and not in `approved`."""
    await claims.judge(claims.scan(claims.world.devices[0], activity=0))
    totals = ledger.totals

    async def judged_meanwhile(conn: Any) -> tuple[int, int]:
        await claims.judge(claims.scan(claims.world.devices[0], activity=1))
        return await totals(conn)

    monkeypatch.setattr(ledger, "totals", judged_meanwhile)
    stats = (await claims.http.get("/stats")).json()
    assert await claims.pool.fetchval("SELECT count(*) FROM claims") == 2  # it was judged
    assert stats["approved"] == stats["claims"] == 1
    assert stats["ledger_debit_cents"] == stats["approved_cents"]
