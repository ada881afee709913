"""Check-in devices against the three services as real processes.

1. every rejection reason ends in ops.dead-letter.v1 with that reason, valid check-ins
   around them are processed;
2. a device made of `openssl` + `kcat` only, following docs/device-protocol.md, is approved;
3. with the broker paused (SIGSTOP) a device keeps scanning into its journal; after SIGCONT
   every check-in has exactly one outcome and each card's check-ins are on the topic in order.
(The broker pause comes last: it is the roughest on the stack.)
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from shared import topics
from shared.envelope import new_envelope
from shared.events.cards import DeviceRevocationReason, DeviceRevoked
from shared.events.checkins import Activity, ActivityCategory, CheckInRecorded
from tests.support.kafka import header, read_topic
from vtp.demo.seed import Seeded, seed
from vtp.device.client import DeviceClient
from vtp.device.journal import Journal
from vtp.device.signer import DeviceIdentity
from vtp.device.transport import KafkaTransport
from vtp.devstack.stack import Stack

pytestmark = pytest.mark.e2e
SCRIPT = Path(__file__).parent / "device_checkin.sh"
APPROVED = {"approved", "capped"}


@dataclass
class World:
    stack: Stack
    seeded: Seeded

    @property
    def bootstrap(self) -> str:
        return self.stack.bootstrap_servers

    def cards_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.stack.url("cards"),
            timeout=30,
            headers={
                "Authorization": f"Bearer {self.stack.keys['api_token_secret']}",
                "X-Audit-Reason": "device e2e",
            },
        )


@pytest.fixture(scope="module")
async def world(stack: Stack) -> World:
    seeded = await seed(
        stack.url("cards"), 4, random.Random(6), token=stack.keys["api_token_secret"]
    )
    return World(stack, seeded)


def _activity(name: str) -> Activity:
    return Activity(id=name, category=ActivityCategory.CULTURE, name=name)


async def _outcome(world: World, checkin_id: object, timeout_s: float = 90) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with httpx.AsyncClient(
        base_url=world.stack.url("claims"), timeout=10, headers=world.stack.operations_headers()
    ) as http:
        while True:
            response = await http.get(f"/claims/by-checkin/{checkin_id}")
            if response.status_code == 200:
                outcome: dict[str, Any] = response.json()
                return outcome
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no outcome for check-in {checkin_id}")
            await asyncio.sleep(0.3)


async def _revoke(world: World, identity: DeviceIdentity) -> str:
    """Through the cards API when it has the endpoint; else as the cards service would.
    Returns once the claims service has the revocation: it learns of it asynchronously
    (cards' outbox, the broker, claims' card-projection consumer), and a check-in judged
    before that is judged as from a registered device."""
    async with world.cards_client() as http:
        response = await http.post(
            f"/devices/{identity.device_id}/revoke", json={"reason": "stolen"}
        )
    if response.status_code < 400:
        await _claims_knows_revoked(world, identity)
        return "cards API"
    assert response.status_code in {404, 405}, response.text
    revoked = DeviceRevoked(
        device_id=identity.device_id,
        provider_id=identity.provider_id,
        revoked_at=datetime.now(UTC),
        reason=DeviceRevocationReason.STOLEN,
    )
    envelope = new_envelope(type=topics.DEVICE_REVOKED.event_type, source="/vrijetijdspas/cards")
    producer = AIOKafkaProducer(bootstrap_servers=world.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.DEVICE_REVOKED.name,
            value=revoked.model_dump_json().encode(),
            key=str(identity.device_id).encode(),
            headers=envelope.headers(),
        )
    finally:
        await producer.stop()
    await _claims_knows_revoked(world, identity)
    return "DeviceRevoked event"


async def _claims_knows_revoked(
    world: World, identity: DeviceIdentity, timeout_s: float = 60
) -> None:
    conn = await asyncpg.connect(world.stack.dsns["claims"])
    try:
        for _ in range(int(timeout_s / 0.2)):
            revoked_at = await conn.fetchval(
                "SELECT revoked_at FROM devices WHERE device_id = $1", identity.device_id
            )
            if revoked_at is not None:
                return
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    raise AssertionError(f"claims never learned that device {identity.device_id} was revoked")


async def test_each_rejection_reason_is_dead_lettered_while_valid_check_ins_flow(
    world: World,
) -> None:
    device = world.seeded.devices[0].identity
    stolen = world.seeded.devices[1].identity
    card = world.seeded.card_numbers[0]
    await _revoke(world, stolen)

    def signed(name: str, **extra: Any) -> tuple[Any, CheckInRecorded]:
        return device.check_in(
            card_number=card, activity=_activity(name), price_cents=1000, **extra
        )

    # The claims service learns of the seeded cards and devices asynchronously: the first
    # check-in may beat its card's projection (then it waits for the card, parked, and is
    # judged when the card comes); retry until one is approved.
    for attempt in range(30):
        first_env, first = signed(f"e2e-valid-first-{attempt}")
        await _produce(world, card, [(None, first_env, first.model_dump_json().encode())])
        outcome = await _outcome(world, first.checkin_id)
        if outcome["outcome"] in APPROVED:
            break
        await asyncio.sleep(1)
    assert outcome["outcome"] in APPROVED, outcome

    poison: list[tuple[str | None, Any, bytes]] = []
    env, c = signed("e2e-forged")
    forged = json.loads(c.model_dump_json())
    forged["price_cents"] = 100_000
    poison.append(("bad_signature", env, json.dumps(forged).encode()))
    env, c = stolen.check_in(card_number=card, activity=_activity("e2e-stolen"), price_cents=1000)
    poison.append(("device_revoked", env, c.model_dump_json().encode()))
    env, c = signed("e2e-replay", nonce=first.nonce)
    poison.append(("replayed", env, c.model_dump_json().encode()))
    env, c = signed("e2e-future", occurred_at=datetime.now(UTC) + timedelta(days=2))
    poison.append(("in_the_future", env, c.model_dump_json().encode()))
    env, c = signed("e2e-old", occurred_at=datetime.now(UTC) - timedelta(days=45))
    poison.append(("out_of_window", env, c.model_dump_json().encode()))
    env, c = signed("e2e-oversized")
    poison.append(("oversized", env, c.model_dump_json().encode() + b" " * (70 * 1024)))
    env, c = signed("e2e-v2")
    v2 = env.model_copy(update={"type": "be.vrijetijdspas.checkins.CheckInRecorded.v2"})
    poison.append(("unknown_version", v2, c.model_dump_json().encode()))
    env, _ = signed("e2e-malformed")
    poison.append(("malformed_json", env, b'{"checkin_id": "0190a3c5-'))

    valid_around = []
    interleaved: list[tuple[str | None, Any, bytes]] = []
    for index, item in enumerate(poison):
        interleaved.append(item)
        env, c = signed(f"e2e-valid-after-{index}")
        valid_around.append(c)
        interleaved.append((None, env, c.model_dump_json().encode()))
    await _produce(world, card, interleaved)

    for c in valid_around:
        assert (await _outcome(world, c.checkin_id))["outcome"] in APPROVED | {"rejected"}
    for reason in ("in_the_future", "out_of_window"):
        checkin_id = next(e.subject for r, e, _ in poison if r == reason)
        assert (await _outcome(world, checkin_id))["reason"] == reason

    expected = {str(env.id): reason for reason, env, _ in poison}
    letters = await _dead_letters(world, set(expected))
    assert letters == expected
    valid_ids = {str(first_env.id)} | {str(e.id) for r, e, _ in interleaved if r is None}
    assert not valid_ids & set(await _dead_letters(world, valid_ids, wait=False))


async def _produce(world: World, key: str, messages: list[tuple[str | None, Any, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=world.bootstrap, acks="all", max_request_size=2**20
    )
    await producer.start()
    try:
        for _, envelope, body in messages:
            await producer.send_and_wait(
                topics.CHECKIN_RECORDED.name,
                value=body,
                key=key.encode(),
                headers=envelope.headers(),
            )
    finally:
        await producer.stop()


async def _dead_letters(world: World, ce_ids: set[str], *, wait: bool = True) -> dict[str, str]:
    """dlq_reason by source ce_id, for the given ids, once all arrived (or once, if not wait)."""
    for _ in range(20 if wait else 1):
        records = await read_topic(world.bootstrap, topics.DEAD_LETTER_TOPIC, idle_s=1.5)
        found = {
            header(r, "ce_id") or "": header(r, "dlq_reason") or ""
            for r in records
            if header(r, "ce_id") in ce_ids
        }
        if not wait or set(found) == ce_ids:
            return found
        await asyncio.sleep(1)
    return found


def _kafkajs_dir() -> str | None:
    """kafkajs for the script's fallback sender (kcat 1.7 cannot talk to the embedded
    broker), installed once into a cache folder; None without node and npm."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return None
    folder = Path.home() / ".cache" / "vtp-e2e-kafkajs"
    if not (folder / "node_modules" / "kafkajs").exists():
        folder.mkdir(parents=True, exist_ok=True)
        installed = subprocess.run(
            [
                "npm",
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(folder),
                "kafkajs@2.2.4",
            ],
            capture_output=True,
            timeout=180,
            check=False,
        )
        if installed.returncode != 0:
            return None
    return str(folder)


@pytest.mark.skipif(
    shutil.which("openssl") is None
    or (shutil.which("kcat") is None and shutil.which("node") is None),
    reason="needs openssl and kcat (apt-get install kcat) or node",
)
async def test_a_device_made_of_openssl_and_kcat_is_approved(world: World) -> None:
    identity = world.seeded.devices[3].identity
    raw = identity.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    kafkajs = await asyncio.to_thread(_kafkajs_dir)
    env = {
        **os.environ,
        "BOOTSTRAP": world.bootstrap,
        "DEVICE_ID": str(identity.device_id),
        "PROVIDER_ID": str(identity.provider_id),
        "PRIVATE_KEY": base64.b64encode(raw).decode(),
        "CARD": world.seeded.card_numbers[1],
        "ACTIVITY_ID": "kcat-voorstelling",
        "CATEGORY": "culture",
        "ACTIVITY_NAME": "Voorstelling",
        "PRICE_CENTS": "1200",
        "COUNTER": "1",
        "KAFKAJS_DIR": kafkajs or "",
    }
    done = await asyncio.to_thread(
        subprocess.run, ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    print(done.stderr)  # which sender carried the record
    checkin_id = done.stdout.strip().splitlines()[-1]
    outcome = await _outcome(world, checkin_id)
    assert outcome["outcome"] in APPROVED, outcome
    assert outcome["amount_cents"] > 0


async def test_a_device_keeps_scanning_through_a_broker_pause_and_delivers_once_in_order(
    world: World, tmp_path: Path
) -> None:
    assert world.stack.broker is not None, "needs the embedded broker to pause"
    identity = world.seeded.devices[2].identity
    cards = world.seeded.card_numbers[2:4]
    transport = KafkaTransport(
        world.bootstrap, client_id="e2e-offline-device", request_timeout_ms=3000
    )
    client = DeviceClient(
        identity, Journal(tmp_path / "device.sqlite"), transport, flush_interval_s=0.2
    )
    scanned: list[CheckInRecorded] = []

    def scan(index: int) -> None:
        scanned.append(
            client.scan(card=cards[index % 2], activity=_activity(f"off-{index}"), price_cents=800)
        )

    await client.start()
    try:
        scan(0)
        scan(1)
        await _until(lambda: client.journal.count() == 0, 30, "the first scans to be sent")
        world.stack.broker.pause()
        try:
            for index in range(2, 14):
                scan(index)
                await asyncio.sleep(0.25)
            await asyncio.sleep(3.5)  # at least one send attempt times out while paused
            assert client.journal.count() == 12
        finally:
            world.stack.broker.resume()
        await _until(lambda: client.journal.count() == 0, 90, "the journal to drain")
    finally:
        await client.stop()
        await transport.close()
        client.journal.close()

    outcomes = [await _outcome(world, c.checkin_id, timeout_s=120) for c in scanned]
    assert all(o["outcome"] in APPROVED | {"rejected"} for o in outcomes)
    ours = {str(c.checkin_id) for c in scanned}
    decided: list[str] = []
    for topic in (topics.CLAIM_APPROVED.name, topics.CLAIM_REJECTED.name):
        for record in await read_topic(world.bootstrap, topic, idle_s=1.5):
            checkin_id = json.loads(record.value)["checkin_id"]
            if checkin_id in ours:
                decided.append(checkin_id)
    assert sorted(decided) == sorted(ours), "each check-in has exactly one outcome event"

    first_seen: dict[str, list[int]] = {}
    seen: set[str] = set()
    for record in sorted(
        await read_topic(world.bootstrap, topics.CHECKIN_RECORDED.name, idle_s=1.5),
        key=lambda r: (r.partition, r.offset),
    ):
        if header(record, "ce_source") != identity.source:
            continue  # other tests put malformed bodies on this topic
        body = json.loads(record.value)
        if body["checkin_id"] not in seen:
            seen.add(body["checkin_id"])
            first_seen.setdefault(record.key.decode(), []).append(body["counter"])
    assert seen == ours
    for card in cards:
        counters = first_seen[card]
        assert counters == sorted(counters), f"card {card} out of order: {counters}"
    assert sorted(c for cs in first_seen.values() for c in cs) == [c.counter for c in scanned]


async def _until(condition: Any, timeout_s: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)
