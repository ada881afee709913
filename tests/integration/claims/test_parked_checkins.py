"""A check-in that reaches claims before its device's registration (another topic, another
consumer) is parked, and judged once the registration is applied: exactly one outcome,
however the two transactions interleave, and whatever is delivered again."""

from __future__ import annotations

import base64
import dataclasses
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import FastAPI

from services.claims import parking
from services.claims.checkins import CheckInHandler
from services.claims.parking import copy_id, parked_figures, readiness_figures
from services.claims.projections import TOPICS as CARD_TOPICS
from services.claims.projections import apply_card_events
from shared import topics
from shared.consumer import BatchProcessor, Incoming
from shared.deadletter import SourceRecord
from shared.envelope import new_envelope
from shared.events import cards as ev
from shared.events.checkins import CheckInRecorded
from shared.http import health_router
from shared.kafka import KafkaSender, make_producer
from shared.outbox import headers_from_json
from shared.readahead import source_record
from shared.relay import OutboxRelay
from tests.integration.claims import scenario
from tests.support.components import Infra
from tests.support.locks import second_waits_for_first
from vtp.device.signer import DeviceIdentity

pytestmark = pytest.mark.integration


@dataclass
class NewDevice:
    """A device registered with the cards service whose registration claims has not
    applied yet, and one of its first check-ins."""

    pool: asyncpg.Pool
    world: scenario.World
    device: DeviceIdentity
    checkin: Incoming[CheckInRecorded]
    registration: Incoming[ev.DeviceRegistered]
    checkins: BatchProcessor
    cards: BatchProcessor

    def scan(self, device: DeviceIdentity, activity: int) -> tuple[SourceRecord, CheckInRecorded]:
        """A check-in of `device` on the senior card, a few minutes ago, as the record."""
        envelope, checkin = device.check_in(
            card_number=self.world.card_numbers[1],
            activity=scenario.ACTIVITIES[activity],
            price_cents=4500,
            occurred_at=scenario.NOW - timedelta(minutes=5 - activity),
        )
        return self.world.record(envelope, checkin), checkin

    async def parked(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM parked_checkins"))

    async def outbox(self, topic: str) -> list[SourceRecord]:
        """The outbox rows on `topic`, as the consumer would get them from the broker."""
        rows = await self.pool.fetch(
            "SELECT seq, key, headers, payload FROM outbox WHERE topic = $1 ORDER BY seq", topic
        )
        return [
            SourceRecord(
                topic, 0, 10_000 + r["seq"], r["key"], r["payload"], headers_from_json(r["headers"])
            )
            for r in rows
        ]

    async def claims(self) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT outcome, reason, event_id FROM claims WHERE checkin_id = $1",
            self.checkin.payload.checkin_id,
        )


@pytest.fixture
async def new_device(database: str) -> AsyncIterator[NewDevice]:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=4)
    try:
        await scenario.prepare(pool)
        world = await scenario.build_world(pool, holders=2)
        key = Ed25519PrivateKey.generate()
        device = DeviceIdentity(uuid.uuid4(), world.devices[0].provider_id, key)  # a partner
        envelope, checkin = device.check_in(
            card_number=world.card_numbers[1],  # a senior card, never blocked
            activity=scenario.ACTIVITIES[0],
            price_cents=4500,
            occurred_at=scenario.NOW - timedelta(minutes=5),
        )
        registered = ev.DeviceRegistered(
            device_id=device.device_id,
            provider_id=device.provider_id,
            public_key=base64.b64encode(
                key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            ).decode(),
            key_id=1,
            registered_at=scenario.NOW - timedelta(minutes=6),
        )
        registration = new_envelope(type=topics.DEVICE_REGISTERED.event_type, source="/cards")
        policy = scenario.policy()
        yield NewDevice(
            pool,
            world,
            device,
            Incoming(envelope, checkin, world.record(envelope, checkin)),
            Incoming(registration, registered, world.record(registration, registered)),
            BatchProcessor(
                "claims.checkins",
                (topics.CHECKIN_RECORDED,),
                CheckInHandler(policy, lambda: scenario.NOW),
                pool,
            ),
            BatchProcessor("claims.cards", CARD_TOPICS, apply_card_events, pool),
        )
    finally:
        await pool.close()


async def test_a_checkin_before_its_device_waits_and_is_judged_once_the_device_is_known(
    new_device: NewDevice,
) -> None:
    d = new_device
    await d.checkins.process([d.checkin.source])
    # No outcome yet, and nothing an operator cannot bring back: no dead letter.
    assert await d.claims() == []
    assert await d.outbox(topics.DEAD_LETTER_TOPIC) == []
    assert await d.parked() == 1
    async with d.pool.acquire() as conn:
        figures = await parked_figures(conn)
    assert figures["checkins_parked"] == 1
    # ...and in the readiness answer, where `vtp status` looks.
    app = FastAPI()
    app.include_router(health_router(lambda: d.pool, readiness_figures))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://claims"
    ) as client:
        ready = (await client.get("/health/ready")).json()
    assert ready["checkins_parked"] == 1 and ready["checkins_parked_oldest_s"] is not None
    assert [x["device_id"] for x in figures["devices"]] == [str(d.device.device_id)]
    await d.checkins.process([d.checkin.source])  # delivered again: a duplicate
    assert await d.parked() == 1

    await d.cards.process([d.registration.source])
    assert await d.parked() == 0
    [copy] = await d.outbox(topics.CHECKIN_RECORDED.name)
    assert dict(copy.headers)["ce_id"] == str(copy_id(d.checkin.envelope.id)).encode()
    assert copy.key == d.checkin.source.key and copy.value == d.checkin.source.value

    await d.checkins.process([copy])
    claims = await d.claims()
    assert [(c["outcome"], c["reason"]) for c in claims] == [("approved", None)]
    assert claims[0]["event_id"] == copy_id(d.checkin.envelope.id)
    assert len(await d.outbox(topics.CLAIM_APPROVED.name)) == 1
    # The copy again, the original again, the registration again: nothing changes.
    await d.checkins.process([copy, d.checkin.source])
    await d.cards.process([d.registration.source])
    assert len(await d.claims()) == 1
    assert len(await d.outbox(topics.CHECKIN_RECORDED.name)) == 1
    assert len(await d.outbox(topics.CLAIM_APPROVED.name)) == 1
    assert await d.outbox(topics.DEAD_LETTER_TOPIC) == []
    assert await d.parked() == 0


async def test_a_copy_from_a_device_of_another_provider_is_dead_lettered_not_parked_again(
    new_device: NewDevice,
) -> None:
    d = new_device
    await d.checkins.process([d.checkin.source])
    other = d.registration.payload.model_copy(update={"provider_id": uuid.uuid4()})
    envelope = new_envelope(type=topics.DEVICE_REGISTERED.event_type, source="/cards")
    await d.cards.process([d.world.record(envelope, other)])
    [copy] = await d.outbox(topics.CHECKIN_RECORDED.name)
    await d.checkins.process([copy])
    assert await d.claims() == [] and await d.parked() == 0
    [letter] = await d.outbox(topics.DEAD_LETTER_TOPIC)
    assert dict(letter.headers)["dlq_reason"] == b"unknown_device"


async def test_a_registration_applied_while_the_checkin_is_being_parked_releases_it(
    new_device: NewDevice,
) -> None:
    d = new_device
    handler = CheckInHandler(scenario.policy(), lambda: scenario.NOW)
    # The check-in batch has read "no such device" and parked the check-in, not committed
    # yet; the registration, applied meanwhile, must not miss what it parked.
    await second_waits_for_first(
        d.pool,
        lambda conn: handler(conn, [d.checkin]),
        lambda: d.cards.process([d.registration.source]),
    )
    assert await d.parked() == 0
    [copy] = await d.outbox(topics.CHECKIN_RECORDED.name)
    await d.checkins.process([copy])
    assert [c["outcome"] for c in await d.claims()] == ["approved"]


async def test_a_checkin_parked_while_its_registration_commits_is_sent_back_at_once(
    new_device: NewDevice,
) -> None:
    d = new_device
    # The registration is applied, not committed yet: the check-in batch does not see the
    # device, and must not park the check-in for good once the registration has committed.
    await second_waits_for_first(
        d.pool,
        lambda conn: apply_card_events(conn, [d.registration]),
        lambda: d.checkins.process([d.checkin.source]),
    )
    assert await d.parked() == 0
    [copy] = await d.outbox(topics.CHECKIN_RECORDED.name)
    assert dict(copy.headers)["ce_id"] == str(copy_id(d.checkin.envelope.id)).encode()
    await d.checkins.process([copy])
    assert [c["outcome"] for c in await d.claims()] == ["approved"]


async def test_the_copy_travels_through_the_real_broker(
    new_device: NewDevice, infra: Infra, topics_ready: None
) -> None:
    d = new_device
    await d.checkins.process([d.checkin.source])
    await d.cards.process([d.registration.source])
    producer = make_producer(infra.bootstrap_servers, client_id="test-parked-relay")
    await producer.start()
    try:
        assert await OutboxRelay(d.pool, KafkaSender(producer)).publish_pending() == 1
    finally:
        await producer.stop()
    wanted = str(copy_id(d.checkin.envelope.id)).encode()
    consumer = AIOKafkaConsumer(
        topics.CHECKIN_RECORDED.name,
        bootstrap_servers=infra.bootstrap_servers,
        group_id=f"test-parked-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        found: list[Any] = []
        for _ in range(150):
            batch = await consumer.getmany(timeout_ms=200)
            found += [
                r
                for rs in batch.values()
                for r in rs
                if dict(r.headers or ()).get("ce_id") == wanted
            ]
            if found:
                break
    finally:
        await consumer.stop()
    assert len(found) == 1
    await d.checkins.process([source_record(found[0])])
    assert [c["outcome"] for c in await d.claims()] == ["approved"]


async def test_a_checkin_whose_device_never_comes_is_dead_lettered_after_the_window(
    new_device: NewDevice,
) -> None:
    d = new_device
    await d.checkins.process([d.checkin.source])
    window = parking.keep_for(scenario.policy())
    assert window == timedelta(days=31)  # the policy's 30-day window and a day
    async with d.pool.acquire() as conn, conn.transaction():
        assert await parking.expire(conn, window) == 0  # parked just now: it waits
    await d.pool.execute("UPDATE parked_checkins SET parked_at = now() - interval '32 days'")
    async with d.pool.acquire() as conn, conn.transaction():
        assert await parking.expire(conn, window) == 1
    assert await d.parked() == 0
    [letter] = await d.outbox(topics.DEAD_LETTER_TOPIC)
    headers = dict(letter.headers)
    assert headers["dlq_reason"] == b"unknown_device"
    assert headers["dlq_consumer"] == b"claims.checkins"
    assert b"was never registered" in headers["dlq_detail"]
    assert letter.value == d.checkin.source.value  # the check-in as it came
    assert await d.claims() == []  # and no outcome was made up for it


async def test_a_checkin_signed_with_a_key_claims_has_not_heard_of_waits_for_it(
    new_device: NewDevice,
) -> None:
    """A device that rotated its key signs with the new one at once; the new key's
    registration travels on another topic and may come later. Refused as bad_signature,
    such a check-in was lost."""
    d = new_device
    await d.cards.process([d.registration.source])  # claims knows key 1
    new_key = Ed25519PrivateKey.generate()
    rotated = DeviceIdentity(d.device.device_id, d.device.provider_id, new_key, key_id=2)
    record, checkin = d.scan(rotated, activity=1)
    await d.checkins.process([record])
    assert await d.parked() == 1
    assert await d.outbox(topics.DEAD_LETTER_TOPIC) == []
    # Without a key_id nothing says a newer key exists: refused, as any bad signature.
    await d.checkins.process([d.scan(dataclasses.replace(rotated, key_id=None), activity=2)[0]])
    [letter] = await d.outbox(topics.DEAD_LETTER_TOPIC)
    assert dict(letter.headers)["dlq_reason"] == b"bad_signature"
    assert await d.parked() == 1

    # Key 2's registration arrives: the check-in goes back to be judged, and counts.
    second = d.registration.payload.model_copy(
        update={
            "key_id": 2,
            "public_key": base64.b64encode(
                new_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            ).decode(),
        }
    )
    registration = new_envelope(type=topics.DEVICE_REGISTERED.event_type, source="/cards")
    await d.cards.process([d.world.record(registration, second)])
    assert await d.parked() == 0
    [copy] = await d.outbox(topics.CHECKIN_RECORDED.name)
    await d.checkins.process([copy])
    outcome = await d.pool.fetchrow(
        "SELECT outcome, reason FROM claims WHERE checkin_id = $1", checkin.checkin_id
    )
    assert outcome is not None and tuple(outcome) == ("approved", None)


async def test_a_checkin_waiting_for_a_key_that_never_comes_is_refused_after_an_hour(
    new_device: NewDevice,
) -> None:
    d = new_device
    await d.cards.process([d.registration.source])
    forged = DeviceIdentity(
        d.device.device_id, d.device.provider_id, Ed25519PrivateKey.generate(), key_id=7
    )
    await d.checkins.process([d.scan(forged, activity=1)[0]])
    window = parking.keep_for(scenario.policy())
    async with d.pool.acquire() as conn, conn.transaction():
        assert await parking.expire(conn, window) == 0  # a rotation's key comes in seconds
    await d.pool.execute("UPDATE parked_checkins SET parked_at = now() - interval '61 minutes'")
    async with d.pool.acquire() as conn, conn.transaction():
        assert await parking.expire(conn, window) == 1  # not a month: the device is known
    [letter] = await d.outbox(topics.DEAD_LETTER_TOPIC)
    headers = dict(letter.headers)
    assert headers["dlq_reason"] == b"bad_signature"
    assert b"signed with key 7" in headers["dlq_detail"]
    assert b"claims knows key 1" in headers["dlq_detail"]


@pytest.mark.parametrize(
    ("occurred", "expected"),
    [
        # From a device that was offline for four weeks: it reached us in its window.
        (-timedelta(days=29), ("approved", None)),
        # From a device whose clock is an hour ahead: in the future when it reached us.
        (timedelta(hours=1), ("rejected", "in_the_future")),
    ],
)
async def test_a_parked_checkin_is_judged_against_when_it_reached_us_not_its_copy(
    new_device: NewDevice, occurred: timedelta, expected: tuple[str, str | None]
) -> None:
    """Its copy reaches the broker when its device's registration comes (here two days
    later): judged against the copy's time, a check-in that came in time would be
    `out_of_window` through no fault of the card holder, and one from a device whose clock
    is ahead would pass."""
    d = new_device
    envelope, checkin = d.device.check_in(
        card_number=d.world.card_numbers[1],
        activity=scenario.ACTIVITIES[0],
        price_cents=4500,
        occurred_at=scenario.NOW + occurred,
    )
    record = dataclasses.replace(d.world.record(envelope, checkin), appended_at=scenario.NOW)
    await d.checkins.process([record])
    assert await d.parked() == 1

    later = scenario.NOW + timedelta(days=2)
    await d.cards.process([d.registration.source])
    [copy] = await d.outbox(topics.CHECKIN_RECORDED.name)
    judging = BatchProcessor(
        "claims.checkins",
        (topics.CHECKIN_RECORDED,),
        CheckInHandler(scenario.policy(), lambda: later),
        d.pool,
    )
    await judging.process([dataclasses.replace(copy, appended_at=later)])
    decided = await d.pool.fetch(
        "SELECT outcome, reason FROM claims WHERE checkin_id = $1", checkin.checkin_id
    )
    assert [tuple(r) for r in decided] == [expected]


async def test_a_record_posing_as_a_copy_is_judged_against_when_it_reached_us(
    new_device: NewDevice,
) -> None:
    """Anyone who may write to the check-in topic (every device) can send a record with a
    copy's `ce_id` and `causation_id`: only the copy claims itself put back, byte for byte,
    is judged against the time its original reached us."""
    d = new_device
    original = dataclasses.replace(d.checkin.source, appended_at=scenario.NOW)
    await d.checkins.process([original])
    await d.cards.process([d.registration.source])
    [copy] = await d.outbox(topics.CHECKIN_RECORDED.name)
    later = scenario.NOW + timedelta(days=2)
    # The device sends a check-in of 29 days ago under the copy's id: out of its window
    # now, in it when the original reached us.
    envelope, stale = d.device.check_in(
        card_number=d.world.card_numbers[1],
        activity=scenario.ACTIVITIES[1],
        price_cents=4500,
        occurred_at=scenario.NOW - timedelta(days=29),
    )
    posing = envelope.model_copy(
        update={
            "id": copy_id(d.checkin.envelope.id),
            "causation_id": str(d.checkin.envelope.id),
        }
    )
    judging = BatchProcessor(
        "claims.checkins",
        (topics.CHECKIN_RECORDED,),
        CheckInHandler(scenario.policy(), lambda: later),
        d.pool,
    )
    await judging.process([dataclasses.replace(d.world.record(posing, stale), appended_at=later)])
    await judging.process([dataclasses.replace(copy, appended_at=later)])
    decided = await d.pool.fetch(
        "SELECT checkin_id, outcome, reason FROM claims WHERE checkin_id = ANY($1::uuid[])",
        [stale.checkin_id, d.checkin.payload.checkin_id],
    )
    assert {r["checkin_id"]: (r["outcome"], r["reason"]) for r in decided} == {
        stale.checkin_id: ("rejected", "out_of_window"),
        d.checkin.payload.checkin_id: ("approved", None),
    }
