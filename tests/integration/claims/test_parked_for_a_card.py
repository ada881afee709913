"""A check-in that reaches claims before its card's registration (CardIssued: another topic,
another consumer — a brand-new card used at once, or a backlog caught up after an outage)
is parked like one before its device, and judged once the card is known, against when it
reached us; a card that never comes ends as `unknown_card`, as before, only later."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from structlog.testing import capture_logs

from services.claims import parking
from services.claims.checkins import CheckInHandler
from services.claims.parking import copy_id, parked_figures
from services.claims.projections import TOPICS as CARD_TOPICS
from services.claims.projections import apply_card_events
from shared import topics
from shared.checkin_signature import public_key_b64
from shared.consumer import BatchProcessor, Incoming
from shared.deadletter import SourceRecord
from shared.envelope import new_envelope
from shared.events import cards as ev
from shared.events.checkins import CheckInRecorded
from shared.outbox import headers_from_json
from tests.integration.claims import scenario
from tests.support.locks import second_waits_for_first
from vtp.device.signer import DeviceIdentity

pytestmark = pytest.mark.integration


@dataclass
class NewCard:
    """A card issued by the cards service whose CardIssued claims has not applied yet, and
    a check-in with it at a refund partner."""

    pool: asyncpg.Pool
    world: scenario.World
    number: str
    checkin: Incoming[CheckInRecorded]
    issued: Incoming[ev.CardIssued]
    checkins: BatchProcessor
    cards: BatchProcessor

    def scan(
        self, activity: int, occurred_at: timedelta, device: DeviceIdentity | None = None
    ) -> Incoming[CheckInRecorded]:
        """A check-in with the new card at NOW + `occurred_at`, reaching us at NOW."""
        envelope, checkin = (device or self.world.devices[0]).check_in(
            card_number=self.number,
            activity=scenario.ACTIVITIES[activity],
            price_cents=4500,
            occurred_at=scenario.NOW + occurred_at,
        )
        return Incoming(envelope, checkin, _arrived_at_now(self.world, envelope, checkin))

    def judging_at(self, clock: timedelta) -> BatchProcessor:
        """The check-in consumer with its clock at NOW + `clock`."""
        return BatchProcessor(
            "claims.checkins",
            (topics.CHECKIN_RECORDED,),
            CheckInHandler(scenario.policy(), lambda: scenario.NOW + clock),
            self.pool,
        )

    async def parked(self) -> list[asyncpg.Record]:
        return await self.pool.fetch("SELECT checkin_id, awaiting_card FROM parked_checkins")

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

    async def claims(self, checkin_id: uuid.UUID | None = None) -> list[tuple[str, str | None]]:
        rows = await self.pool.fetch(
            "SELECT outcome, reason FROM claims WHERE checkin_id = $1",
            checkin_id or self.checkin.payload.checkin_id,
        )
        return [(r["outcome"], r["reason"]) for r in rows]

    async def nonce_used(self) -> bool:
        c = self.checkin.payload
        return bool(
            await self.pool.fetchval(
                "SELECT count(*) FROM device_nonces WHERE device_id = $1 AND nonce = $2",
                c.device_id,
                c.nonce,
            )
        )


def _arrived_at_now(world: scenario.World, envelope: Any, payload: Any) -> SourceRecord:
    """The record as the broker gives it, stamped NOW."""
    return dataclasses.replace(world.record(envelope, payload), appended_at=scenario.NOW)


@pytest.fixture
async def new_card(database: str) -> AsyncIterator[NewCard]:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=4)
    try:
        await scenario.prepare(pool)
        world = await scenario.build_world(pool, holders=1)
        number = scenario._card_number(next(scenario._card_serials) % 10**7)
        issued = ev.CardIssued(
            card_id=uuid.uuid4(),
            card_number=number,
            holder_id=uuid.uuid4(),
            target_group="senior",
            eligible_from=date(2025, 1, 1),
            eligible_until=date(2027, 1, 1),
            grace_days=0,
            referrer_org_id=uuid.uuid4(),
            resident=True,
            issued_at=scenario.NOW - timedelta(minutes=6),
        )
        issuing = new_envelope(type=topics.CARD_ISSUED.event_type, source="/cards")
        envelope, checkin = world.devices[0].check_in(  # at the refund partner
            card_number=number,
            activity=scenario.ACTIVITIES[0],
            price_cents=4500,
            occurred_at=scenario.NOW - timedelta(minutes=5),
        )
        yield NewCard(
            pool,
            world,
            number,
            Incoming(envelope, checkin, _arrived_at_now(world, envelope, checkin)),
            Incoming(issuing, issued, world.record(issuing, issued)),
            BatchProcessor(
                "claims.checkins",
                (topics.CHECKIN_RECORDED,),
                CheckInHandler(scenario.policy(), lambda: scenario.NOW),
                pool,
            ),
            BatchProcessor("claims.cards", CARD_TOPICS, apply_card_events, pool),
        )
    finally:
        await pool.close()


def _logged(logs: Sequence[Any]) -> str:
    return json.dumps(logs, default=str)


async def test_a_checkin_before_its_card_waits_and_is_judged_as_it_came_once_the_card_is_known(
    new_card: NewCard,
) -> None:
    d = new_card
    # From a device whose clock is an hour ahead: that outcome does not depend on the card,
    # and is given at once, as before.
    ahead = d.scan(activity=1, occurred_at=timedelta(hours=1))
    with capture_logs() as logs:
        await d.checkins.process([d.checkin.source, ahead.source])
    # No outcome yet, no rejection, its nonce still free; nothing for an operator to redo.
    assert await d.claims() == []
    assert [(r["checkin_id"], r["awaiting_card"]) for r in await d.parked()] == [
        (d.checkin.payload.checkin_id, d.number)
    ]
    assert not await d.nonce_used()
    assert await d.claims(ahead.payload.checkin_id) == [("rejected", "in_the_future")]
    [rejected] = await d.outbox(topics.CLAIM_REJECTED.name)
    assert json.loads(rejected.value or b"")["checkin_id"] == str(ahead.payload.checkin_id)
    assert "check-in parked: card not known yet" in [line["event"] for line in logs]
    assert d.number not in _logged(logs)
    async with d.pool.acquire() as conn:
        figures = await parked_figures(conn)
    # Apart from the check-ins waiting for a device, which `vtp status` warns of.
    assert (figures["checkins_parked"], figures["checkins_awaiting_card"]) == (0, 1)
    assert figures["checkins_awaiting_card_oldest_s"] is not None
    assert figures["devices"] == []
    assert [(x["device_id"], x["checkins"]) for x in figures["awaiting_card"]] == [
        (str(d.checkin.payload.device_id), 1)
    ]
    assert d.number not in json.dumps(figures)
    await d.checkins.process([d.checkin.source])  # delivered again: a duplicate
    assert len(await d.parked()) == 1

    # Its CardIssued is applied a month later (claims' card projection was stuck): the
    # check-in goes back, and is judged against when it reached us, in its window.
    with capture_logs() as logs:
        await d.cards.process([d.issued.source])
    assert await d.parked() == []
    released = [
        line for line in logs if line["event"] == "parked check-in released: card now known"
    ]
    assert [line["card_id"] for line in released] == [d.issued.payload.card_id]
    assert d.number not in _logged(logs)
    [copy] = await d.outbox(topics.CHECKIN_RECORDED.name)
    assert dict(copy.headers)["ce_id"] == str(copy_id(d.checkin.envelope.id)).encode()
    assert copy.key == d.checkin.source.key and copy.value == d.checkin.source.value
    month = timedelta(days=30, hours=12)
    await d.judging_at(month).process([dataclasses.replace(copy, appended_at=scenario.NOW + month)])
    assert await d.claims() == [("approved", None)]
    assert await d.nonce_used()
    assert len(await d.outbox(topics.CLAIM_APPROVED.name)) == 1
    # The copy again, the original again, the card again: nothing changes.
    await d.checkins.process([copy, d.checkin.source])
    await d.cards.process([d.issued.source])
    assert await d.claims() == [("approved", None)]
    assert len(await d.outbox(topics.CHECKIN_RECORDED.name)) == 1
    assert len(await d.outbox(topics.CLAIM_APPROVED.name)) == 1
    assert len(await d.outbox(topics.CLAIM_REJECTED.name)) == 1
    [letter] = await d.outbox(topics.DEAD_LETTER_TOPIC)  # the clock ahead, for operators
    assert dict(letter.headers)["dlq_reason"] == b"in_the_future"
    assert await d.parked() == []


async def test_a_card_issued_while_the_checkin_is_being_parked_releases_it(
    new_card: NewCard,
) -> None:
    d = new_card
    handler = CheckInHandler(scenario.policy(), lambda: scenario.NOW)
    # The check-in batch has read "no such card" and parked the check-in, not committed
    # yet; the card's CardIssued, applied meanwhile, must not miss what it parked.
    await second_waits_for_first(
        d.pool,
        lambda conn: handler(conn, [d.checkin]),
        lambda: d.cards.process([d.issued.source]),
    )
    assert await d.parked() == []
    [copy] = await d.outbox(topics.CHECKIN_RECORDED.name)
    await d.checkins.process([copy])
    assert await d.claims() == [("approved", None)]


async def test_a_checkin_parked_while_its_card_commits_is_sent_back_at_once(
    new_card: NewCard,
) -> None:
    d = new_card
    # The CardIssued is applied, not committed yet: the check-in batch does not see the
    # card, and must not park the check-in for good once the card has committed.
    await second_waits_for_first(
        d.pool,
        lambda conn: apply_card_events(conn, [d.issued]),
        lambda: d.checkins.process([d.checkin.source]),
    )
    assert await d.parked() == []
    [copy] = await d.outbox(topics.CHECKIN_RECORDED.name)
    assert dict(copy.headers)["ce_id"] == str(copy_id(d.checkin.envelope.id)).encode()
    await d.checkins.process([copy])
    assert await d.claims() == [("approved", None)]


async def test_a_card_that_never_comes_ends_as_unknown_card_after_the_wait(
    new_card: NewCard,
) -> None:
    """A mistyped or forged card number: rejected as `unknown_card` as before, only after
    the wait (the check-in window and a day), and judged against when it reached us."""
    d = new_card
    await d.checkins.process([d.checkin.source])
    window = parking.keep_for(scenario.policy())
    async with d.pool.acquire() as conn, conn.transaction():
        assert await parking.expire(conn, window) == 0  # parked just now: it waits
    await d.pool.execute("UPDATE parked_checkins SET parked_at = now() - interval '32 days'")
    with capture_logs() as logs:
        async with d.pool.acquire() as conn, conn.transaction():
            assert await parking.expire(conn, window) == 1
    assert d.number not in _logged(logs)
    assert await d.parked() == []
    assert await d.claims() == []  # no outcome made up here: the handler judges it
    [copy] = await d.outbox(topics.CHECKIN_RECORDED.name)
    later = timedelta(days=32)
    await d.judging_at(later).process([dataclasses.replace(copy, appended_at=scenario.NOW + later)])
    # Not parked again, and not out_of_window: judged as it came, without its card.
    assert await d.claims() == [("rejected", "unknown_card")]
    assert await d.parked() == []
    [rejected] = await d.outbox(topics.CLAIM_REJECTED.name)
    assert json.loads(rejected.value or b"")["reason"] == "unknown_card"
    assert await d.nonce_used()
    # An authenticated check-in: a rejection, not a dead letter.
    assert await d.outbox(topics.DEAD_LETTER_TOPIC) == []
    # The original replayed, the copy again, and the card after all: nothing changes.
    await d.checkins.process([d.checkin.source, copy])
    await d.cards.process([d.issued.source])
    assert await d.claims() == [("rejected", "unknown_card")]
    assert len(await d.outbox(topics.CHECKIN_RECORDED.name)) == 1
    assert len(await d.outbox(topics.CLAIM_REJECTED.name)) == 1
    assert await d.parked() == []


async def test_a_new_device_scanning_a_new_card_waits_for_both(new_card: NewCard) -> None:
    """A new provider device and a brand-new card, each registered on its own topic: the
    check-in waits for the device, then for the card, and is judged as it came."""
    d = new_card
    key = Ed25519PrivateKey.generate()
    device = DeviceIdentity(uuid.uuid4(), d.world.devices[0].provider_id, key)
    checkin = d.scan(activity=0, occurred_at=-timedelta(minutes=5), device=device)
    registered = ev.DeviceRegistered(
        device_id=device.device_id,
        provider_id=device.provider_id,
        public_key=public_key_b64(key),
        key_id=1,
        registered_at=scenario.NOW - timedelta(minutes=6),
    )
    registration = new_envelope(type=topics.DEVICE_REGISTERED.event_type, source="/cards")
    await d.checkins.process([checkin.source])
    assert [r["awaiting_card"] for r in await d.parked()] == [None]  # its device first

    await d.cards.process([d.world.record(registration, registered)])
    [first] = await d.outbox(topics.CHECKIN_RECORDED.name)
    await d.checkins.process([first])
    assert await d.claims(checkin.payload.checkin_id) == []
    assert [r["awaiting_card"] for r in await d.parked()] == [d.number]  # then its card

    await d.cards.process([d.issued.source])
    assert await d.parked() == []
    [_, second] = await d.outbox(topics.CHECKIN_RECORDED.name)
    assert dict(second.headers)["ce_id"] == str(copy_id(copy_id(checkin.envelope.id))).encode()
    month = timedelta(days=30, hours=12)
    await d.judging_at(month).process(
        [dataclasses.replace(second, appended_at=scenario.NOW + month)]
    )
    assert await d.claims(checkin.payload.checkin_id) == [("approved", None)]
