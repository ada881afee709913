"""What claims knows over time, through the real consumers on a real PostgreSQL: a check-in
is judged and booked by the grant in force on its own day and paid by the provider's terms
of that moment, whatever changed since, and no change (an eligibility, a revocation) is
lost to the order in which the cards topics arrive."""

from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.claims import projections
from services.claims.checkins import CheckInHandler
from shared import topics
from shared.consumer import BatchProcessor
from shared.deadletter import SourceRecord
from shared.envelope import Envelope, new_envelope
from shared.events import cards as ev
from shared.events.base import EventPayload
from tests.integration.claims import scenario
from vtp.device.signer import DeviceIdentity

pytestmark = pytest.mark.integration

BRUSSELS = ZoneInfo("Europe/Brussels")
# Check-ins arrive on 5 January 2025, some late from a device that was offline.
CLOCK = datetime(2025, 1, 5, 12, 0, tzinfo=UTC)
POVERTY_2024 = ev.EligibilityGrant(
    target_group="poverty",
    eligible_from=date(2024, 1, 1),
    eligible_until=date(2024, 12, 31),
    grace_days=0,
)
SENIOR_2025 = ev.EligibilityGrant(
    target_group="senior",
    eligible_from=date(2025, 1, 1),
    eligible_until=date(2025, 12, 31),
    grace_days=0,
)
GRANTED = datetime(2024, 1, 1, 9, 0, tzinfo=UTC)
RENEWED = datetime(2024, 12, 15, 10, 0, tzinfo=UTC)  # the early renewal
DECEMBER = datetime(2024, 12, 20, 19, 0, tzinfo=BRUSSELS)
JANUARY = datetime(2025, 1, 3, 19, 0, tzinfo=BRUSSELS)


@dataclass
class Claims:
    """The claims service's consumers of card events and check-ins, on one database."""

    pool: asyncpg.Pool
    world: scenario.World
    cards: BatchProcessor
    checkins: BatchProcessor

    async def deliver(self, *events: EventPayload | SourceRecord) -> None:
        """Card events, each in its own batch, in the order given."""
        for e in events:
            record = e if isinstance(e, SourceRecord) else self._record(e)
            await self.cards.process([record])
        assert self.cards.dead_lettered == 0

    async def check_in(
        self,
        card_number: str,
        at: datetime,
        appended_at: datetime | None = None,
        dead_lettered: int = 0,
    ) -> dict[str, Any]:
        """One check-in (a culture activity of 20 euro at a refund partner): its claim, the
        cost accounts it was booked on and its outcome event. `appended_at`: when the broker
        took it, on a topic the broker stamps."""
        envelope, checkin = self.world.devices[0].check_in(
            card_number=card_number,
            activity=scenario.ACTIVITIES[0],
            price_cents=2000,
            occurred_at=at,
        )
        record = dataclasses.replace(self.world.record(envelope, checkin), appended_at=appended_at)
        before = self.checkins.dead_lettered
        await self.checkins.process([record])
        assert self.checkins.dead_lettered == before + dead_lettered
        async with self.pool.acquire() as conn:
            claim = await conn.fetchrow(
                "SELECT claim_id, outcome, reason, target_group, amount_cents FROM claims"
                " WHERE checkin_id = $1",
                checkin.checkin_id,
            )
            assert claim is not None
            accounts = await conn.fetch(
                "SELECT debit_account FROM transfers WHERE claim_id = $1", claim["claim_id"]
            )
            outcomes = await conn.fetch(
                "SELECT payload FROM outbox WHERE topic = ANY($1::text[])",
                [topics.CLAIM_APPROVED.name, topics.CLAIM_REJECTED.name],
            )
        [event] = [
            body
            for body in (json.loads(o["payload"]) for o in outcomes)
            if body["checkin_id"] == str(checkin.checkin_id)
        ]
        return {
            **dict(claim),
            "expense_accounts": sorted(
                a["debit_account"] for a in accounts if a["debit_account"].startswith("expense:")
            ),
            "event": event,
        }

    def _record(self, payload: EventPayload) -> SourceRecord:
        topic = topics.topic_for(payload)
        return self.world.record(new_envelope(type=topic.event_type, source="/cards"), payload)


@pytest.fixture
async def claims(database: str) -> AsyncIterator[Claims]:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
    assert pool is not None
    try:
        await scenario.prepare(pool)
        world = await scenario.build_world(pool, holders=0)  # providers and devices
        handler = CheckInHandler(scenario.policy(), lambda: CLOCK)
        yield Claims(
            pool,
            world,
            BatchProcessor("claims.cards", projections.TOPICS, projections.apply_card_events, pool),
            BatchProcessor("claims.checkins", (topics.CHECKIN_RECORDED,), handler, pool),
        )
    finally:
        await pool.close()


@dataclass(frozen=True)
class Holder:
    card_id: uuid.UUID
    holder_id: uuid.UUID
    card_number: str
    referrer_org_id: uuid.UUID

    def issued(self, grant: ev.EligibilityGrant) -> ev.CardIssued:
        return ev.CardIssued(
            card_id=self.card_id,
            card_number=self.card_number,
            holder_id=self.holder_id,
            referrer_org_id=self.referrer_org_id,
            issued_at=GRANTED,
            **grant.model_dump(),
        )

    def changed(self, at: datetime, *grants: ev.EligibilityGrant) -> ev.EligibilityChanged:
        """As the cards service sends it: all grants, and the one reaching furthest."""
        furthest = max(grants, key=lambda g: g.eligible_until)
        return ev.EligibilityChanged(
            holder_id=self.holder_id,
            referrer_org_id=self.referrer_org_id,
            changed_at=at,
            grants=grants,
            **furthest.model_dump(),
        )


def new_holder() -> Holder:
    number = scenario._card_number(next(scenario._card_serials) % 10**7)
    return Holder(uuid.uuid4(), uuid.uuid4(), number, uuid.uuid4())


def _outcome(claim: dict[str, Any]) -> tuple[str, str | None, str | None, int]:
    return claim["outcome"], claim["reason"], claim["target_group"], claim["amount_cents"]


async def test_an_early_renewal_does_not_reach_back_over_december(claims: Claims) -> None:
    h = new_holder()
    await claims.deliver(
        h.changed(GRANTED, POVERTY_2024),
        h.issued(POVERTY_2024),
        # On 15 December the referrer grants 2025 already, as a senior.
        h.changed(RENEWED, POVERTY_2024, SENIOR_2025),
    )
    # 20 December, arriving late: the poverty tariff of the grant in force that day (75 %).
    december = await claims.check_in(h.card_number, DECEMBER)
    assert _outcome(december) == ("approved", None, "poverty", 1500)
    assert december["expense_accounts"] == ["expense:discount:poverty"]
    assert december["event"]["target_group"] == "poverty"
    # 3 January: the renewal's senior tariff (25 %), on the senior budget line.
    january = await claims.check_in(h.card_number, JANUARY)
    assert _outcome(january) == ("approved", None, "senior", 500)
    assert january["expense_accounts"] == ["expense:discount:senior"]
    assert january["event"]["target_group"] == "senior"


async def test_a_day_no_grant_covers_is_not_eligible(claims: Claims) -> None:
    h = new_holder()
    later = SENIOR_2025.model_copy(update={"eligible_from": date(2025, 1, 4)})
    await claims.deliver(h.issued(POVERTY_2024), h.changed(RENEWED, POVERTY_2024, later))
    gap = await claims.check_in(h.card_number, JANUARY)
    assert _outcome(gap) == ("rejected", "not_eligible", None, 0)
    assert gap["event"]["payee_kind"] == "card_holder"  # a refund partner: no refund comes


async def test_an_eligibility_change_before_its_card_is_kept(claims: Claims) -> None:
    h = new_holder()
    extended = POVERTY_2024.model_copy(update={"eligible_until": date(2025, 6, 30)})
    # The extension travels on its own topic and overtakes the card issued before it.
    await claims.deliver(h.changed(RENEWED, extended), h.issued(POVERTY_2024))
    january = await claims.check_in(h.card_number, JANUARY)
    assert _outcome(january) == ("approved", None, "poverty", 1500)


async def test_an_older_change_arriving_late_changes_nothing(claims: Claims) -> None:
    h = new_holder()
    await claims.deliver(
        h.issued(POVERTY_2024),
        h.changed(RENEWED, POVERTY_2024, SENIOR_2025),
        h.changed(GRANTED, POVERTY_2024),  # redelivered after the renewal
    )
    january = await claims.check_in(h.card_number, JANUARY)
    assert _outcome(january) == ("approved", None, "senior", 500)


async def test_changes_from_a_producer_without_grants_add_up(claims: Claims) -> None:
    """An older cards service names one grant per change, the one reaching furthest:
    claims adds it to what it knew (the card's grant), rather than replacing that."""
    h = new_holder()
    record = claims._record(h.changed(RENEWED, SENIOR_2025))
    body = json.loads(record.value or b"")
    del body["grants"]
    legacy = dataclasses.replace(record, value=json.dumps(body).encode())
    await claims.deliver(h.issued(POVERTY_2024), legacy)
    december = await claims.check_in(h.card_number, DECEMBER)
    assert _outcome(december) == ("approved", None, "poverty", 1500)
    january = await claims.check_in(h.card_number, JANUARY)
    assert _outcome(january) == ("approved", None, "senior", 500)


async def test_a_late_check_in_is_paid_as_the_provider_worked_when_it_happened(
    claims: Claims,
) -> None:
    h = new_holder()
    await claims.deliver(h.changed(GRANTED, POVERTY_2024, SENIOR_2025), h.issued(POVERTY_2024))
    device = claims.world.devices[0]  # a refund partner: holders pay the full price

    def registered(at: datetime, mode: ev.ProviderMode) -> SourceRecord:
        envelope = Envelope(
            type=topics.PROVIDER_REGISTERED.event_type, source="/cards", time=at, correlation_id="t"
        )
        provider = ev.ProviderRegistered(
            provider_id=device.provider_id,
            name="Aanbieder",
            sub_municipality="Heist-Centrum",
            mode=mode,
        )
        return claims.world.record(envelope, provider)

    # Registered in refund mode in 2024; on 1 January 2025 it switches to the discount at
    # the till (the second event comes first: the order of arrival does not matter).
    await claims.deliver(
        registered(datetime(2025, 1, 1, 9, 0, tzinfo=UTC), ev.ProviderMode.TILL_DISCOUNT),
        registered(GRANTED, ev.ProviderMode.REFUND),
    )
    # 20 December, sent late: the holder paid the full price then, and is refunded.
    december = await claims.check_in(h.card_number, DECEMBER)
    assert december["event"]["payee_kind"] == "card_holder"
    # 3 January: the provider gave the discount at its till, and is reimbursed.
    january = await claims.check_in(h.card_number, JANUARY)
    assert january["event"]["payee_kind"] == "provider"
    # Twice the same activity that day: rejected, and the outcome says the discount was
    # given at the till (the holder is told it is not covered, not "no refund").
    again = await claims.check_in(h.card_number, JANUARY + timedelta(hours=1))
    assert (again["outcome"], again["reason"]) == ("rejected", "already_today")
    assert again["event"]["payee_kind"] == "provider"


async def test_a_revocation_that_overtakes_the_registration_is_kept(claims: Claims) -> None:
    h = new_holder()
    await claims.deliver(h.changed(GRANTED, POVERTY_2024, SENIOR_2025), h.issued(POVERTY_2024))
    key = Ed25519PrivateKey.generate()
    stolen = DeviceIdentity(uuid.uuid4(), claims.world.devices[0].provider_id, key)
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    # The revocation travels on its own topic and overtakes the registration.
    await claims.deliver(
        ev.DeviceRevoked(
            device_id=stolen.device_id,
            provider_id=stolen.provider_id,
            revoked_at=datetime(2024, 12, 1, tzinfo=UTC),
            reason=ev.DeviceRevocationReason.STOLEN,
        ),
        ev.DeviceRegistered(
            device_id=stolen.device_id,
            provider_id=stolen.provider_id,
            public_key=base64.b64encode(raw).decode(),
            key_id=1,
            registered_at=datetime(2024, 11, 1, tzinfo=UTC),
        ),
    )
    envelope, checkin = stolen.check_in(
        card_number=h.card_number,
        activity=scenario.ACTIVITIES[0],
        price_cents=2000,
        occurred_at=DECEMBER,
    )
    await claims.checkins.process([claims.world.record(envelope, checkin)])
    assert claims.checkins.dead_lettered == 1  # refused as revoked, never judged
    async with claims.pool.acquire() as conn:
        decided = await conn.fetchval(
            "SELECT count(*) FROM claims WHERE checkin_id = $1", checkin.checkin_id
        )
        letter = await conn.fetchval(
            "SELECT headers::text FROM outbox WHERE topic = $1", topics.DEAD_LETTER_TOPIC
        )
    assert decided == 0
    assert "device_revoked" in letter


async def test_a_status_change_keeps_its_reason_code_and_an_old_free_text_one_is_refused(
    claims: Claims,
) -> None:
    h = new_holder()
    await claims.deliver(h.changed(GRANTED, POVERTY_2024), h.issued(POVERTY_2024))
    blocked_at = datetime(2024, 6, 1, tzinfo=UTC)
    await claims.deliver(
        ev.CardStatusChanged(
            card_id=h.card_id,
            card_number=h.card_number,
            holder_id=h.holder_id,
            status=ev.CardStatus.BLOCKED,
            reason=ev.CardStatusReason.STOLEN,
            effective_at=blocked_at,
        )
    )
    # As the cards service sent it before reasons were codes: what the desk typed.
    typed = "verhuisd naar de Kerkstraat 4 bij haar zus"
    old = {
        "card_id": str(h.card_id),
        "card_number": h.card_number,
        "holder_id": str(h.holder_id),
        "status": "revoked",
        "reason": typed,
        "effective_at": "2024-07-01T00:00:00+00:00",
    }
    envelope = new_envelope(type=topics.CARD_STATUS_CHANGED.event_type, source="/cards")
    record = SourceRecord(
        topics.CARD_STATUS_CHANGED.name, 0, 1, None, json.dumps(old).encode(), envelope.headers()
    )
    await claims.cards.process([record])
    assert claims.cards.dead_lettered == 1
    async with claims.pool.acquire() as conn:
        history = await conn.fetch(
            "SELECT status, reason FROM card_status_history WHERE card_id = $1", h.card_id
        )
        letter = await conn.fetchrow(
            "SELECT headers::text AS headers FROM outbox WHERE topic = $1",
            topics.DEAD_LETTER_TOPIC,
        )
    assert [tuple(r) for r in history] == [("blocked", "stolen")]
    assert letter is not None and "schema_violation" in letter["headers"]
    assert "reason: Input should be 'lost', 'stolen'" in letter["headers"]
    assert typed not in letter["headers"]  # the detail names the field, not the text


async def test_a_check_in_that_reached_the_broker_in_time_is_in_time_however_late_judged(
    claims: Claims,
) -> None:
    h = new_holder()
    await claims.deliver(h.changed(GRANTED, POVERTY_2024, SENIOR_2025), h.issued(POVERTY_2024))
    november = datetime(2024, 11, 20, 19, 0, tzinfo=BRUSSELS)  # 46 days before CLOCK
    # It reached the broker the next day; claims judges it only now (a backlog, a replay).
    arrived = await claims.check_in(h.card_number, november, november + timedelta(days=1))
    assert _outcome(arrived) == ("approved", None, "poverty", 1500)
    # Without the broker's time (the embedded broker keeps the producer's), claims can only
    # count to its own clock: out of the 30-day window.
    unknown = await claims.check_in(h.card_number, november + timedelta(hours=1), dead_lettered=1)
    assert (unknown["outcome"], unknown["reason"]) == ("rejected", "out_of_window")


async def test_a_check_in_sent_before_its_device_key_was_rotated_still_counts(
    claims: Claims,
) -> None:
    """A check-in is signed when scanned; a rotation may come between its sending and its
    judging (a backlog, a replay). Once lost as bad_signature: the holder's refund too."""
    h = new_holder()
    await claims.deliver(h.changed(GRANTED, POVERTY_2024, SENIOR_2025), h.issued(POVERTY_2024))
    old = claims.world.devices[0]
    new_key = Ed25519PrivateKey.generate()
    rotated_at = CLOCK - timedelta(hours=2)
    await claims.deliver(
        ev.DeviceRegistered(
            device_id=old.device_id,
            provider_id=old.provider_id,
            public_key=base64.b64encode(
                new_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            ).decode(),
            key_id=2,
            registered_at=rotated_at,
        )
    )
    # Signed with the old key, it reached the broker before the rotation: it counts.
    sent_before = await claims.check_in(
        h.card_number, JANUARY, appended_at=rotated_at - timedelta(minutes=1)
    )
    assert _outcome(sent_before) == ("approved", None, "senior", 500)

    async def refused(appended_at: datetime | None) -> str:
        envelope, checkin = old.check_in(
            card_number=h.card_number,
            activity=scenario.ACTIVITIES[0],
            price_cents=2000,
            occurred_at=JANUARY - timedelta(days=1),
        )
        record = dataclasses.replace(
            claims.world.record(envelope, checkin), appended_at=appended_at
        )
        before = claims.checkins.dead_lettered
        await claims.checkins.process([record])
        assert claims.checkins.dead_lettered == before + 1
        async with claims.pool.acquire() as conn:
            reason: str = await conn.fetchval(
                "SELECT reason FROM unauthenticated_checkins WHERE checkin_id = $1",
                checkin.checkin_id,
            )
        return reason

    # Signed with the old key, it reached the broker after the rotation: the device should
    # have signed it again with its new key. Without the broker's time, claims' own clock
    # (after the rotation) is all it knows.
    assert await refused(rotated_at + timedelta(minutes=1)) == "bad_signature"
    assert await refused(None) == "bad_signature"
    # The new key counts from the rotation on.
    claims.world.devices[0] = DeviceIdentity(old.device_id, old.provider_id, new_key)
    signed_anew = await claims.check_in(h.card_number, JANUARY - timedelta(days=2))
    assert _outcome(signed_anew) == ("approved", None, "senior", 500)
    # The replaced key is kept, with the moment it was replaced.
    async with claims.pool.acquire() as conn:
        kept = await conn.fetch(
            "SELECT key_id, superseded_at FROM device_key_history WHERE device_id = $1",
            old.device_id,
        )
    assert [(k["key_id"], k["superseded_at"]) for k in kept] == [(1, rotated_at)]
