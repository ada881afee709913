"""A small municipality for claims tests: a policy, card holders, providers and devices,
put into a claims database through the real projection of the cards service's events."""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from services.claims.cancellations import CancellationHandler
from services.claims.policy import RefundPolicy
from services.claims.projections import apply_card_events
from shared import topics
from shared.consumer import Incoming
from shared.db import DbConnection, migrate_service
from shared.deadletter import SourceRecord
from shared.envelope import Envelope, new_envelope
from shared.events import cards as ev
from shared.events.base import EventPayload
from shared.events.checkins import (
    Activity,
    ActivityCategory,
    CancellationReason,
    CheckInRecorded,
)
from tests.integration.claims.reference_policy import RefCard, RefGrant, RefProvider
from tests.support.cancellations import signed_cancellation
from vtp.device.signer import DeviceIdentity

MIGRATIONS = Path(__file__).parents[3] / "services" / "claims" / "migrations"
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)

POLICY: dict[str, Any] = {
    "municipality": "Proefgemeente",
    "budget_year": "program",
    "program_year_start": "03-01",
    "versions": [
        {
            "effective_from": date(2020, 1, 1),
            "discount_basis_points": {"poverty": 7500, "senior": 2500},
            "cap_per_checkin_cents": 2500,
            "yearly_budget_cents": 4000,
            "frequency_limits": [{"per": "provider", "period": "week", "max_checkins": 3}],
            "eligible_categories": ["culture", "sport", "youth"],
            "checkin_window_days": 30,
            "future_tolerance_seconds": 300,
            "distribution": [
                {
                    "payer": "provider",
                    "basis": "percent_of_total",
                    "basis_points": 1000,
                    "applies_to": "non_residents",
                },
                {"payer": "government:vlaanderen", "basis": "fixed", "amount_cents": 150},
            ],
        },
        {
            "effective_from": date(2026, 3, 1),
            "discount_basis_points": {"poverty": 5000, "senior": 3333},
            "cap_per_checkin_cents": 3000,
            "yearly_budget_cents": 5000,
            "once_per_activity_per_day": True,
            "frequency_limits": [{"per": "provider", "period": "week", "max_checkins": 2}],
            "eligible_categories": ["culture", "sport", "youth", "course"],
            "checkin_window_days": 30,
            "future_tolerance_seconds": 300,
            "distribution": [
                {
                    "payer": "government:vlaanderen",
                    "basis": "percent_of_remainder",
                    "basis_points": 2000,
                },
            ],
            "budget_lines_cents": {"poverty": 100000, "senior": 50000},
        },
    ],
}

ACTIVITIES = (
    Activity(id="theater", category=ActivityCategory.CULTURE, name="Theater"),
    Activity(id="zwembad", category=ActivityCategory.SPORT, name="Zwembad"),
    Activity(id="kookles", category=ActivityCategory.COURSE, name="Kookles"),
    Activity(id="speelplein", category=ActivityCategory.YOUTH, name="Speelplein"),
)
UNKNOWN_CARD = "6299000000006"


# What the cards desk seals for finance (name and IBAN); claims passes it on unread.
SEALED_ACCOUNT = "sealed-name-and-iban"


def policy() -> RefundPolicy:
    return RefundPolicy.model_validate(POLICY)


@dataclass
class World:
    devices: list[DeviceIdentity]
    cards: dict[str, RefCard]
    card_numbers: list[str]
    providers: dict[uuid.UUID, RefProvider]
    offsets: list[int] = field(default_factory=lambda: [0])

    def device_of(self, provider_id: uuid.UUID) -> DeviceIdentity:
        """A device of that provider."""
        return next(d for d in self.devices if d.provider_id == provider_id)

    def record(self, envelope: Envelope, payload: EventPayload) -> SourceRecord:
        """The Kafka record a producer would have sent: headers, key and JSON body."""
        topic = topics.topic_for(payload)
        self.offsets[0] += 1
        return SourceRecord(
            topic.name,
            0,
            self.offsets[0],
            topic.key_of(payload),
            payload.model_dump_json().encode(),
            envelope.headers(),
        )

    def senior_checkin(self) -> Incoming[CheckInRecorded]:
        """A check-in that is approved: a senior card (never blocked) at the refund
        partner's theatre, 45 euro, five minutes ago."""
        envelope, checkin = self.devices[0].check_in(
            card_number=self.card_numbers[1],
            activity=ACTIVITIES[0],
            price_cents=4500,
            occurred_at=NOW - timedelta(minutes=5),
        )
        return Incoming(envelope, checkin, self.record(envelope, checkin))


# Every example of a property test adds its cards to the same database: drawn at random
# from the 10^7 numbers, two of some hundred cards collided now and then (a flaky
# duplicate-key failure in CI); consecutive serials from a random start never do.
_card_serials = itertools.count(uuid.uuid4().int % 10**7)


def _card_number(rng_value: int) -> str:
    body = f"62990{rng_value:07d}"
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d -= 9 if d > 9 else 0
        total += d
    return body + str((10 - total % 10) % 10)


async def prepare(pool: asyncpg.Pool) -> None:
    await migrate_service(pool, MIGRATIONS)


async def provider_row(conn: DbConnection, name: str) -> uuid.UUID:
    """A refund-mode partner provider in Heist-Centrum, written straight into the projection
    (for the report tests, which need rows, not the events that make them)."""
    provider_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO providers (provider_id, name, sub_municipality, mode, partner)"
        " VALUES ($1, $2, 'Heist-Centrum', 'refund', true)",
        provider_id,
        name,
    )
    return provider_id


async def build_world(pool: asyncpg.Pool, *, holders: int = 3) -> World:
    """Fresh ids every time, so many worlds can live in one database side by side."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    events: list[EventPayload] = []
    providers: dict[uuid.UUID, RefProvider] = {}
    devices = []
    for mode, partner in (("refund", True), ("till_discount", True), ("refund", False)):
        provider_id = uuid.uuid4()
        providers[provider_id] = RefProvider(partner=partner, till_discount=mode == "till_discount")
        events.append(
            ev.ProviderRegistered(
                provider_id=provider_id,
                name=f"Aanbieder {mode}",
                sub_municipality="Heist-Centrum",
                mode=ev.ProviderMode(mode),
                partner=partner,
            )
        )
        key = Ed25519PrivateKey.generate()
        device = DeviceIdentity(uuid.uuid4(), provider_id, key)
        devices.append(device)
        import base64

        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        events.append(
            ev.DeviceRegistered(
                device_id=device.device_id,
                provider_id=provider_id,
                public_key=base64.b64encode(
                    key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
                ).decode(),
                key_id=1,
                registered_at=NOW - timedelta(days=400),
            )
        )
    cards: dict[str, RefCard] = {}
    numbers = []
    first_day = date(2025, 1, 1)
    shapes = [
        # (resident, blocked at, grants): the card is issued with the first grant; later
        # ones come in an EligibilityChanged listing all, which claims hears of before the
        # card (it travels on another topic).
        (True, NOW - timedelta(days=18), (RefGrant("poverty", first_day, date(2027, 1, 1), 0),)),
        (False, None, (RefGrant("senior", first_day, date(2027, 1, 1), 0),)),
        # Poverty; in its grace days a short senior grant starts, which takes over; then a
        # week without any grant; then poverty again.
        (
            False,
            None,
            (
                RefGrant("poverty", first_day, date(2026, 2, 20), 10),
                RefGrant("senior", date(2026, 2, 24), date(2026, 3, 2), 0),
                RefGrant("poverty", date(2026, 3, 9), date(2027, 3, 1), 0),
            ),
        ),
    ]
    for index in range(holders):
        resident, blocked, grants = shapes[index % len(shapes)]
        number = _card_number(next(_card_serials) % 10**7)
        card_id, holder_id = uuid.uuid4(), uuid.uuid4()
        changes: tuple[tuple[datetime, str], ...] = ()
        if len(grants) > 1:
            furthest = max(grants, key=lambda g: g.eligible_until)
            events.append(
                ev.EligibilityChanged(
                    holder_id=holder_id,
                    **vars(furthest),
                    referrer_org_id=uuid.uuid4(),
                    changed_at=NOW - timedelta(days=20),
                    grants=tuple(ev.EligibilityGrant(**vars(g)) for g in grants),
                )
            )
        issued_with = grants[0]
        referrer = uuid.uuid4()
        events.append(  # with a bank account: a refund is only paid to a known account
            ev.HolderDetailsChanged(
                holder_id=holder_id,
                referrer_org_id=referrer,
                channel="email",
                language="nl",
                beneficiary_sealed=SEALED_ACCOUNT,
                changed_at=NOW - timedelta(days=400),
            )
        )
        events.append(
            ev.CardIssued(
                card_id=card_id,
                card_number=number,
                holder_id=holder_id,
                **vars(issued_with),
                referrer_org_id=referrer,
                resident=resident,
                issued_at=NOW - timedelta(days=400),
            )
        )
        if blocked is not None:
            changes = ((blocked, "blocked"), (blocked + timedelta(days=4), "active"))
            why = {"blocked": "lost", "active": "found"}
            for at, status in changes:
                events.append(
                    ev.CardStatusChanged(
                        card_id=card_id,
                        card_number=number,
                        holder_id=holder_id,
                        status=ev.CardStatus(status),
                        reason=why[status],
                        effective_at=at,
                    )
                )
        cards[number] = RefCard(
            card_id,
            holder_id,
            issued_with.target_group,
            issued_with.eligible_from,
            issued_with.eligible_until,
            issued_with.grace_days,
            resident,
            changes,
            grants if len(grants) > 1 else (),
        )
        numbers.append(number)
    async with pool.acquire() as conn, conn.transaction():
        await apply_card_events(conn, [_incoming(e) for e in events])
    return World(devices, cards, numbers, providers)


def _incoming(payload: EventPayload) -> Incoming[Any]:
    topic = topics.topic_for(payload)
    envelope = new_envelope(type=topic.event_type, source="/test")
    record = SourceRecord(topic.name, 0, 0, None, json.dumps({}).encode(), envelope.headers())
    return Incoming(envelope, payload, record)


async def cancel_claim(
    conn: DbConnection, world: World, card: str, claim_id: uuid.UUID, policy: RefundPolicy
) -> None:
    """The provider cancels the claim's check-in, in the caller's transaction: the claim
    is reversed in the ledger."""
    row = await conn.fetchrow(
        "SELECT checkin_id, provider_id FROM claims WHERE claim_id = $1", claim_id
    )
    assert row is not None
    envelope, cancel = signed_cancellation(
        world.device_of(row["provider_id"]),
        checkin_id=row["checkin_id"],
        card_number=card,
        reason=CancellationReason.ACTIVITY_CANCELLED,
        cancelled_at=NOW,
    )
    await CancellationHandler(policy)(
        conn, [Incoming(envelope, cancel, world.record(envelope, cancel))]
    )
