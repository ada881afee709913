"""A cancellation signed by a device claims has not heard of yet (registered and used at
once), or with a key of it claims has not heard of yet (a rotation), waits for that
registration as a check-in does (services/claims/parking.py), and is applied once it comes:
the claim reversed, the card holder's refund withdrawn, exactly once, however the two
transactions interleave and whatever is delivered again. One whose device or key never
comes is dead-lettered as before, when its wait is over."""

from __future__ import annotations

import base64
import dataclasses
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.claims import parking
from services.claims.cancellations import CancellationHandler
from services.claims.checkins import CheckInHandler
from services.claims.parking import CANCELLATION, copy_id, parked_figures, readiness_figures
from services.claims.projections import TOPICS as CARD_TOPICS
from services.claims.projections import apply_card_events
from shared import topics
from shared.consumer import BatchProcessor, Incoming
from shared.deadletter import SourceRecord
from shared.envelope import new_envelope
from shared.events import cards as ev
from shared.events.checkins import CancellationReason, CheckInCancelled, CheckInRecorded
from shared.outbox import headers_from_json
from tests.integration.claims import scenario
from tests.support.cancellations import signed_cancellation
from tests.support.locks import second_waits_for_first
from vtp.device.signer import DeviceIdentity

pytestmark = pytest.mark.integration


def _public(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


@dataclass
class Late:
    """An approved check-in of the provider's registered device, and a device of the same
    provider registered with the cards service whose registration claims has not applied
    yet."""

    pool: asyncpg.Pool
    world: scenario.World
    checkin: Incoming[CheckInRecorded]
    device: DeviceIdentity
    registration: Incoming[ev.DeviceRegistered]
    checkins: BatchProcessor
    cancellations: BatchProcessor
    cards: BatchProcessor

    @property
    def card(self) -> str:
        return self.checkin.payload.card_number

    def cancellation(
        self,
        device: DeviceIdentity,
        reason: CancellationReason = CancellationReason.ACTIVITY_CANCELLED,
        appended_at: datetime | None = None,
    ) -> Incoming[CheckInCancelled]:
        envelope, cancel = signed_cancellation(
            device,
            checkin_id=self.checkin.payload.checkin_id,
            card_number=self.card,
            reason=reason,
            cancelled_at=scenario.NOW,
        )
        record = dataclasses.replace(self.world.record(envelope, cancel), appended_at=appended_at)
        return Incoming(envelope, cancel, record)

    def registered(self, payload: ev.DeviceRegistered | ev.DeviceRevoked) -> Incoming[Any]:
        topic = topics.topic_for(payload)
        envelope = new_envelope(type=topic.event_type, source="/cards")
        return Incoming(envelope, payload, self.world.record(envelope, payload))

    def rotated(
        self, device: DeviceIdentity, key_id: int, at: datetime
    ) -> tuple[DeviceIdentity, Incoming[ev.DeviceRegistered]]:
        """`device` with a new key `key_id`, and that key's registration (at `at`)."""
        key = Ed25519PrivateKey.generate()
        registration = ev.DeviceRegistered(
            device_id=device.device_id,
            provider_id=device.provider_id,
            public_key=_public(key),
            key_id=key_id,
            registered_at=at,
        )
        new = DeviceIdentity(device.device_id, device.provider_id, key, key_id=key_id)
        return new, self.registered(registration)

    async def check_in(self) -> None:
        await self.checkins.process([self.checkin.source])

    async def parked(self) -> list[asyncpg.Record]:
        return await self.pool.fetch("SELECT kind, checkin_id, device_id FROM parked_checkins")

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

    async def claim(self) -> asyncpg.Record:
        row = await self.pool.fetchrow(
            "SELECT claim_id, holder_id, outcome, reason, detail, reversed_at, reversal_reason"
            " FROM claims WHERE checkin_id = $1",
            self.checkin.payload.checkin_id,
        )
        assert row is not None
        return row

    async def refund_withdrawn(self) -> bool:
        """The claim's transfers mirrored once each and the budget given back."""
        claim = await self.claim()
        approved = await self.pool.fetch(
            "SELECT transfer_id FROM transfers WHERE claim_id = $1 AND code = 'claim_approved'",
            claim["claim_id"],
        )
        reversals = await self.pool.fetch(
            "SELECT reverses FROM transfers WHERE claim_id = $1 AND code = 'claim_reversed'",
            claim["claim_id"],
        )
        used = await self.pool.fetchval(
            "SELECT sum(used_cents) FROM budget_usage WHERE holder_id = $1", claim["holder_id"]
        )
        assert approved
        return sorted(r["reverses"] for r in reversals) == sorted(
            t["transfer_id"] for t in approved
        ) and (used == 0)

    async def standing(self) -> None:
        """The claim approved and not reversed: the refund stands."""
        claim = await self.claim()
        assert claim["outcome"] in ("approved", "capped") and claim["reversed_at"] is None
        assert await self.outbox(topics.CLAIM_REVERSED.name) == []


@pytest.fixture
async def late(database: str) -> AsyncIterator[Late]:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=4)
    try:
        await scenario.prepare(pool)
        world = await scenario.build_world(pool, holders=2)
        provider = world.devices[0].provider_id
        key = Ed25519PrivateKey.generate()
        device = DeviceIdentity(uuid.uuid4(), provider, key, key_id=1)
        registration = ev.DeviceRegistered(
            device_id=device.device_id,
            provider_id=provider,
            public_key=_public(key),
            key_id=1,
            registered_at=scenario.NOW - timedelta(minutes=1),
        )
        envelope = new_envelope(type=topics.DEVICE_REGISTERED.event_type, source="/cards")
        policy = scenario.policy()
        yield Late(
            pool,
            world,
            world.senior_checkin(),
            device,
            Incoming(envelope, registration, world.record(envelope, registration)),
            BatchProcessor(
                "claims.checkins",
                (topics.CHECKIN_RECORDED,),
                CheckInHandler(policy, lambda: scenario.NOW),
                pool,
            ),
            BatchProcessor(
                "claims.cancellations",
                (topics.CHECKIN_CANCELLED,),
                CancellationHandler(policy),
                pool,
            ),
            BatchProcessor("claims.cards", CARD_TOPICS, apply_card_events, pool),
        )
    finally:
        await pool.close()


async def test_a_cancellation_from_a_device_registered_later_is_applied_once_it_is(
    late: Late,
) -> None:
    d = late
    await d.check_in()
    cancel = d.cancellation(d.device, CancellationReason.SCANNED_IN_ERROR)
    await d.cancellations.process([cancel.source])
    # Nothing reversed yet, and nothing lost: no dead letter.
    await d.standing()
    assert await d.outbox(topics.DEAD_LETTER_TOPIC) == []
    assert [(r["kind"], r["device_id"]) for r in await d.parked()] == [
        ("cancellation", d.device.device_id)
    ]
    async with d.pool.acquire() as conn:
        ready = await readiness_figures(conn)
        figures = await parked_figures(conn)
    assert (ready["cancellations_parked"], ready["checkins_parked"]) == (1, 0)
    assert ready["cancellations_parked_oldest_s"] is not None
    assert [(x["device_id"], x["checkins"], x["cancellations"]) for x in figures["devices"]] == [
        (str(d.device.device_id), 0, 1)
    ]
    # The cancellation's check-in has its outcome: no wait is made up for it.
    async with d.pool.acquire() as conn:
        assert await parking.waiting(conn, d.checkin.payload.checkin_id, timedelta(days=31)) is None
    # Delivered again: a duplicate. Sent again by the device (a new message): waits too.
    again = d.cancellation(d.device, CancellationReason.SCANNED_IN_ERROR)
    await d.cancellations.process([cancel.source, again.source])
    assert len(await d.parked()) == 2

    await d.cards.process([d.registration.source])
    assert await d.parked() == []
    copies = await d.outbox(topics.CHECKIN_CANCELLED.name)
    assert {dict(c.headers)["ce_id"] for c in copies} == {
        str(copy_id(m.envelope.id, CANCELLATION)).encode() for m in (cancel, again)
    }
    copy = next(c for c in copies if c.value == cancel.source.value)
    assert copy.key == cancel.source.key
    assert await d.outbox(topics.CHECKIN_RECORDED.name) == []

    await d.cancellations.process(copies)
    claim = await d.claim()
    assert claim["reversed_at"] is not None and claim["reversal_reason"] == "scanned_in_error"
    assert await d.refund_withdrawn()
    assert len(await d.outbox(topics.CLAIM_REVERSED.name)) == 1
    # The copies again, the originals again, the registration again: nothing changes.
    await d.cancellations.process([*copies, cancel.source, again.source])
    await d.cards.process([d.registration.source])
    assert len(await d.outbox(topics.CLAIM_REVERSED.name)) == 1
    assert len(await d.outbox(topics.CHECKIN_CANCELLED.name)) == 2
    assert await d.refund_withdrawn()
    assert await d.outbox(topics.DEAD_LETTER_TOPIC) == []
    assert await d.parked() == []
    assert await d.pool.fetchval("SELECT count(*) FROM released_checkins") == 0


async def test_a_cancellation_signed_with_a_key_registered_later_is_applied_once_it_is(
    late: Late,
) -> None:
    d = late
    await d.check_in()
    own = d.world.devices[0]  # registered with key 1, and the check-in's device
    rotated, second_key = d.rotated(own, 2, scenario.NOW)
    cancel = d.cancellation(rotated)
    await d.cancellations.process([cancel.source])
    await d.standing()
    assert await d.outbox(topics.DEAD_LETTER_TOPIC) == []
    assert [r["kind"] for r in await d.parked()] == ["cancellation"]
    # A key claims has not heard of, but nothing says it is a newer one: refused as ever.
    unsaid = d.cancellation(dataclasses.replace(rotated, key_id=None))
    await d.cancellations.process([unsaid.source])
    [letter] = await d.outbox(topics.DEAD_LETTER_TOPIC)
    assert dict(letter.headers)["dlq_reason"] == b"bad_signature"
    assert len(await d.parked()) == 1

    await d.cards.process([second_key.source])
    assert await d.parked() == []
    [copy] = await d.outbox(topics.CHECKIN_CANCELLED.name)
    await d.cancellations.process([copy, copy])
    await d.cancellations.process([copy, cancel.source])
    assert (await d.claim())["reversed_at"] is not None
    assert await d.refund_withdrawn()
    assert len(await d.outbox(topics.CLAIM_REVERSED.name)) == 1


async def test_a_copy_is_judged_against_when_its_original_reached_the_broker(late: Late) -> None:
    """Released, the copy reaches the broker later: a rotation applied in between must not
    refuse a cancellation signed with the key the device had when the original came."""
    d = late
    await d.check_in()
    cancel = d.cancellation(d.device, appended_at=scenario.NOW)
    await d.cancellations.process([cancel.source])
    await d.cards.process([d.registration.source])
    [copy] = await d.outbox(topics.CHECKIN_CANCELLED.name)
    _, third = d.rotated(d.device, 2, scenario.NOW + timedelta(hours=1))
    await d.cards.process([third.source])
    await d.cancellations.process(
        [dataclasses.replace(copy, appended_at=scenario.NOW + timedelta(hours=2))]
    )
    assert await d.outbox(topics.DEAD_LETTER_TOPIC) == []
    assert (await d.claim())["reversed_at"] is not None
    assert await d.pool.fetchval("SELECT count(*) FROM released_checkins") == 0


async def test_a_cancellation_before_its_checkin_and_its_device_still_cancels_it(
    late: Late,
) -> None:
    d = late
    await d.cancellations.process([d.cancellation(d.device).source])
    await d.cards.process([d.registration.source])
    [copy] = await d.outbox(topics.CHECKIN_CANCELLED.name)
    await d.cancellations.process([copy])  # no claim yet: pending until the check-in comes
    await d.check_in()
    claim = await d.claim()
    assert (claim["outcome"], claim["reason"]) == ("rejected", "checkin_cancelled")
    assert claim["detail"] == "cancelled by the provider: activity_cancelled"
    assert await d.pool.fetchval("SELECT count(*) FROM pending_cancellations") == 0


@pytest.mark.parametrize(
    ("registered_as", "reason"),
    [
        # The device turns out to be another provider's: not its check-in to cancel.
        ("other_provider", b"wrong_provider"),
        # Revoked before its registration reached claims.
        ("revoked", b"device_revoked"),
    ],
)
async def test_a_released_cancellation_is_refused_as_any_other_would_be(
    late: Late, registered_as: str, reason: bytes
) -> None:
    d = late
    await d.check_in()
    cancel = d.cancellation(d.device)
    await d.cancellations.process([cancel.source])
    registration = d.registration.payload
    batch = [d.registration]
    if registered_as == "other_provider":
        other = d.world.devices[1].provider_id
        batch = [d.registered(registration.model_copy(update={"provider_id": other}))]
    else:
        revoked = ev.DeviceRevoked(
            device_id=d.device.device_id,
            provider_id=d.device.provider_id,
            reason=ev.DeviceRevocationReason.LOST,
            revoked_at=scenario.NOW,
        )
        batch.append(d.registered(revoked))
    await d.cards.process([i.source for i in batch])
    [copy] = await d.outbox(topics.CHECKIN_CANCELLED.name)
    await d.cancellations.process([copy])
    [letter] = await d.outbox(topics.DEAD_LETTER_TOPIC)
    assert dict(letter.headers)["dlq_reason"] == reason
    assert dict(letter.headers)["dlq_consumer"] == b"claims.cancellations"
    await d.standing()
    assert await d.parked() == []


@pytest.mark.parametrize("waits_for", ["device", "key"])
async def test_a_cancellation_whose_device_or_key_never_comes_is_dead_lettered_after_the_wait(
    late: Late, waits_for: str
) -> None:
    d = late
    await d.check_in()
    if waits_for == "device":
        signer, reason, wait = d.device, b"unknown_device", "32 days"
    else:
        signer = d.rotated(d.world.devices[0], 7, scenario.NOW)[0]
        reason, wait = b"bad_signature", "61 minutes"
    cancel = d.cancellation(signer)
    await d.cancellations.process([cancel.source])
    assert [r["kind"] for r in await d.parked()] == ["cancellation"]
    assert await d.outbox(topics.DEAD_LETTER_TOPIC) == []
    window = parking.keep_for(scenario.policy())
    async with d.pool.acquire() as conn, conn.transaction():
        assert await parking.expire(conn, window) == 0  # parked just now: it waits
    # As long as a check-in waiting for the same: a device it does not know, the check-in
    # window and a day (a check-in of that device waits as long: its cancellation must not
    # give up first); a key of a device it knows, an hour.
    await d.pool.execute("UPDATE parked_checkins SET parked_at = now() - interval '2 hours'")
    async with d.pool.acquire() as conn, conn.transaction():
        assert await parking.expire(conn, window) == (1 if waits_for == "key" else 0)
    assert len(await d.parked()) == (0 if waits_for == "key" else 1)
    await d.pool.execute(f"UPDATE parked_checkins SET parked_at = now() - interval '{wait}'")
    async with d.pool.acquire() as conn, conn.transaction():
        await parking.expire(conn, window)
    assert await d.parked() == []
    [letter] = await d.outbox(topics.DEAD_LETTER_TOPIC)
    headers = dict(letter.headers)
    assert headers["dlq_reason"] == reason
    assert headers["dlq_consumer"] == b"claims.cancellations"
    assert letter.value == cancel.source.value  # the cancellation as it came
    await d.standing()
    # Not a refused check-in: the check-in's own outcome is untouched.
    assert await d.pool.fetchval("SELECT count(*) FROM unauthenticated_checkins") == 0


async def test_a_registration_applied_while_the_cancellation_is_being_parked_releases_it(
    late: Late,
) -> None:
    d = late
    await d.check_in()
    cancel = d.cancellation(d.device)
    # The cancellation batch has read "no such device" and parked it, not committed yet;
    # the registration, applied meanwhile, must not miss what it parked.
    await second_waits_for_first(
        d.pool,
        lambda conn: CancellationHandler(scenario.policy())(conn, [cancel]),
        lambda: d.cards.process([d.registration.source]),
    )
    assert await d.parked() == []
    [copy] = await d.outbox(topics.CHECKIN_CANCELLED.name)
    await d.cancellations.process([copy])
    assert (await d.claim())["reversed_at"] is not None
    assert await d.refund_withdrawn()


async def test_a_cancellation_parked_while_its_registration_commits_is_sent_back_at_once(
    late: Late,
) -> None:
    d = late
    await d.check_in()
    cancel = d.cancellation(d.device)
    # The registration is applied, not committed yet: the cancellation batch does not see
    # the device, and must not park it for good once the registration has committed.
    await second_waits_for_first(
        d.pool,
        lambda conn: apply_card_events(conn, [d.registration]),
        lambda: d.cancellations.process([cancel.source]),
    )
    assert await d.parked() == []
    [copy] = await d.outbox(topics.CHECKIN_CANCELLED.name)
    assert dict(copy.headers)["ce_id"] == str(copy_id(cancel.envelope.id, CANCELLATION)).encode()
    await d.cancellations.process([copy])
    assert (await d.claim())["reversed_at"] is not None
    assert await d.refund_withdrawn()
    assert len(await d.outbox(topics.CLAIM_REVERSED.name)) == 1
