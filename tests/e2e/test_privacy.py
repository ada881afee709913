"""Must-show 3 and 4, across the three services as real processes.

Canary personal data (a name found nowhere else, a valid national number, a valid IBAN) is
registered, a card issued and signed check-ins emitted; once every check-in has its outcome
and a payment run went out, the person is erased. Then every Kafka topic and every log file
is read: none holds the name, the national number (in any common notation) or the IBAN.
The erasure shredded the person's key, while their events and ledger lines remain under the
opaque holder id and the ledger totals did not move."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from schwifty import IBAN

from shared import topics
from shared.events.checkins import Activity, ActivityCategory
from shared.kafka import make_producer
from tests.support.kafka import read_topic
from vtp.demo.municipality import national_number
from vtp.device.signer import DeviceIdentity
from vtp.devstack.stack import Stack

pytestmark = pytest.mark.e2e

FIRST, LAST = "Zebulon", "Kwispelbeek-Canarius"
BORN = date(1977, 8, 19)
NUMBER = national_number(random.Random(20260817), BORN)
ACCOUNT = str(IBAN.generate("BE", bank_code="539", account_code="8765432"))
ACTIVITIES = [
    (Activity(id=f"canary-{i}", category=ActivityCategory.CULTURE, name=f"Voorstelling {i}"), 1200)
    for i in range(3)
]


def forbidden_strings() -> list[str]:
    n = NUMBER
    grouped = " ".join(ACCOUNT[i : i + 4] for i in range(0, len(ACCOUNT), 4))
    return [
        FIRST,
        LAST,
        n,
        f"{n[:2]}.{n[2:4]}.{n[4:6]}-{n[6:9]}.{n[9:]}",
        f"{n[:6]}-{n[6:9]}-{n[9:]}",
        f"{n[:6]} {n[6:9]} {n[9:]}",
        f"{n[:6]}-{n[6:9]}.{n[9:]}",
        ACCOUNT,
        grouped,
    ]


@dataclass
class CanaryRun:
    holder_id: str
    card_id: str
    checkin_ids: list[str]
    outcomes: list[dict[str, Any]]
    balance_before_erasure: dict[str, Any]
    balance_after_erasure: dict[str, Any]


async def _call(client: httpx.AsyncClient, method: str, path: str, **kw: Any) -> Any:
    response = await client.request(method, path, **kw)
    assert response.status_code < 400, f"{method} {path}: {response.status_code} {response.text}"
    return response.json()


async def _until(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.3)
    raise TimeoutError(what)


@pytest.fixture(scope="module")
async def canary(stack: Stack) -> CanaryRun:
    admin = httpx.AsyncClient(
        base_url=stack.url("cards"),
        headers={"Authorization": f"Bearer {stack.keys['api_token_secret']}"},
        timeout=30,
    )
    claims = httpx.AsyncClient(
        base_url=stack.url("claims"), timeout=30, headers=stack.operations_headers()
    )
    async with admin, claims:
        org = await _call(admin, "POST", "/organisations", json={"name": "OCMW", "kind": "ocmw"})
        token = await _call(
            admin,
            "POST",
            "/api-tokens",
            json={"label": "referrer", "role": "referrer", "organisation_id": org["id"]},
        )
        referrer = httpx.AsyncClient(
            base_url=stack.url("cards"),
            headers={"Authorization": f"Bearer {token['token']}"},
            timeout=30,
        )
        provider = await _call(
            admin,
            "POST",
            "/providers",
            json={"name": "Cultuurcentrum", "sub_municipality": "Heist-Centrum", "mode": "refund"},
        )
        device = DeviceIdentity.from_registration(
            await _call(admin, "POST", f"/providers/{provider['id']}/devices")
        )
        async with referrer:
            person = await _call(
                referrer,
                "POST",
                "/people",
                json={
                    "first_name": FIRST,
                    "last_name": LAST,
                    "date_of_birth": BORN.isoformat(),
                    "national_number": f"{NUMBER[:2]}.{NUMBER[2:4]}.{NUMBER[4:6]}-{NUMBER[6:9]}.{NUMBER[9:]}",
                    "iban": ACCOUNT,
                    "email": "canary@example.org",
                    "address": f"{LAST}straat 1, 2220 Heist-op-den-Berg",
                    "sub_municipality": "Itegem",
                },
            )
            holder_id = person["id"]
            today = date.today()
            await _call(
                referrer,
                "POST",
                f"/people/{holder_id}/eligibility",
                json={
                    "target_group": "poverty",
                    "eligible_from": (today - timedelta(days=30)).isoformat(),
                    "eligible_until": (today + timedelta(days=300)).isoformat(),
                },
            )
            card = await _call(referrer, "POST", f"/people/{holder_id}/cards")

        async def claims_know_card_and_device() -> bool:
            stats = await _call(claims, "GET", "/stats")
            return bool(stats["known_cards"] >= 1 and stats["known_devices"] >= 1)

        await _until(claims_know_card_and_device, 60, "claims never learnt the card")
        producer = make_producer(stack.bootstrap_servers, client_id="privacy-test-device")
        await producer.start()
        checkin_ids = []
        try:
            for index, (activity, price) in enumerate(ACTIVITIES):
                envelope, checkin = device.check_in(
                    card_number=card["card_number"],
                    activity=activity,
                    price_cents=price,
                    occurred_at=datetime.now(UTC) - timedelta(minutes=10 + index),
                )
                await producer.send_and_wait(
                    topics.CHECKIN_RECORDED.name,
                    value=checkin.model_dump_json().encode(),
                    key=checkin.card_number.encode(),
                    headers=envelope.headers(),
                )
                checkin_ids.append(str(checkin.checkin_id))
        finally:
            await producer.stop()

        async def outcome(checkin_id: str) -> Any:
            response = await claims.get(f"/claims/by-checkin/{checkin_id}")
            return response.json() if response.status_code == 200 else None

        outcomes = [
            await _until(lambda c=c: outcome(c), 60, f"no outcome for {c}") for c in checkin_ids
        ]
        await _call(claims, "POST", "/payment-runs")
        before = await _call(claims, "GET", "/ledger/trial-balance")
        await _call(admin, "POST", f"/people/{holder_id}/erasure", json={"reason": "privacy test"})

        async def claims_saw_erasure() -> bool:
            async with _connect(stack, "claims") as conn:
                erased = await conn.fetchval(
                    "SELECT erased_at IS NOT NULL FROM holders WHERE holder_id = $1::uuid",
                    holder_id,
                )
            return bool(erased)

        await _until(claims_saw_erasure, 60, "claims never processed HolderErased")
        after = await _call(claims, "GET", "/ledger/trial-balance")
    return CanaryRun(holder_id, card["card_id"], checkin_ids, outcomes, before, after)


class _connect:
    def __init__(self, stack: Stack, service: str) -> None:
        self.dsn = stack.dsns[service]

    async def __aenter__(self) -> asyncpg.Connection:
        self.conn: asyncpg.Connection = await asyncpg.connect(self.dsn)
        return self.conn

    async def __aexit__(self, *_: object) -> None:
        await self.conn.close()


async def test_no_personal_data_on_any_topic_or_in_any_log(stack: Stack, canary: CanaryRun) -> None:
    assert any(o["outcome"] != "rejected" for o in canary.outcomes), canary.outcomes
    needles = [s.encode() for s in forbidden_strings()]
    names = list(topics.TOPIC_NAMES)
    per_topic = await asyncio.gather(
        *(read_topic(stack.bootstrap_servers, name, idle_s=2.0, timeout_s=40) for name in names)
    )
    scanned = 0
    opaque_seen = set()
    for name, records in zip(names, per_topic, strict=True):
        for record in records:
            blob = b"\n".join(
                [bytes(record.value or b""), bytes(record.key or b"")]
                + [bytes(v or b"") for _, v in record.headers or ()]
            )
            scanned += 1
            if canary.holder_id.encode() in blob:
                opaque_seen.add(name)
            for needle in needles:
                assert needle not in blob, f"{needle!r} found on topic {name}"
    # A positive control: the scan reads the very events about this person (by opaque id).
    assert {topics.CARD_ISSUED.name, topics.HOLDER_ERASED.name} <= opaque_seen
    assert scanned > 10
    logs = [p for p in stack.log_dir.rglob("*") if p.is_file()]
    assert {p.stem for p in logs} >= {"cards", "claims", "notifications"}
    for path in logs:
        content = path.read_bytes()
        for needle in needles:
            assert needle not in content, f"{needle!r} found in log {path.name}"


async def test_erasure_keeps_events_and_ledger_under_the_opaque_id(
    stack: Stack, canary: CanaryRun
) -> None:
    async with _connect(stack, "cards") as conn:
        person = await conn.fetchrow(
            "SELECT data_key, sealed_data, national_number_hash, erased_at FROM people"
            " WHERE person_id = $1::uuid",
            canary.holder_id,
        )
    assert person is not None
    assert person["data_key"] is None and person["national_number_hash"] is None
    assert person["sealed_data"] is not None and person["erased_at"] is not None
    assert NUMBER.encode() not in bytes(person["sealed_data"])
    admin = httpx.AsyncClient(
        base_url=stack.url("cards"),
        headers={"Authorization": f"Bearer {stack.keys['api_token_secret']}"},
    )
    async with admin:
        export = await admin.get(f"/people/{canary.holder_id}/export")
    assert export.status_code == 409 and "erased" in export.json()["detail"]

    issued = await read_topic(stack.bootstrap_servers, topics.CARD_ISSUED.name, idle_s=1.0)
    assert canary.holder_id.encode() in b"".join(bytes(r.value) for r in issued)
    async with _connect(stack, "claims") as conn:
        lines = await conn.fetchval(
            "SELECT count(*) FROM transfers t JOIN claims c USING (claim_id)"
            " WHERE c.holder_id = $1::uuid",
            canary.holder_id,
        )
        approved = await conn.fetchval(
            "SELECT count(*) FROM claims WHERE holder_id = $1::uuid AND outcome <> 'rejected'",
            canary.holder_id,
        )
    assert approved >= 1 and lines >= approved
    assert canary.balance_after_erasure == canary.balance_before_erasure
    assert canary.balance_after_erasure["difference_cents"] == 0


async def test_a_provider_cannot_ask_claims_whether_its_visitor_had_the_reduced_tariff(
    stack: Stack, canary: CanaryRun
) -> None:
    """A provider knows its own check-in ids: without the operations token the claims
    service tells nothing about them (nor anything else but its health)."""
    checkin_id = canary.checkin_ids[0]
    async with httpx.AsyncClient(base_url=stack.url("claims"), timeout=10) as anonymous:
        refused = await anonymous.get(f"/claims/by-checkin/{checkin_id}")
        guessed = await anonymous.get(
            f"/claims/by-checkin/{checkin_id}", headers={"Authorization": "Bearer guess"}
        )
        health = await anonymous.get("/health/ready")
    assert refused.status_code == 401 and guessed.status_code == 401
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    assert refused.json() == {"detail": "authorization: send 'Authorization: Bearer <token>'"}
    assert guessed.json() == {"detail": "authorization: unknown token"}
    assert checkin_id not in refused.text + guessed.text
    assert health.status_code == 200
    async with httpx.AsyncClient(
        base_url=stack.url("claims"), timeout=10, headers=stack.operations_headers()
    ) as operator:
        assert (await operator.get(f"/claims/by-checkin/{checkin_id}")).status_code == 200
