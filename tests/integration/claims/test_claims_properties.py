"""Must-show 1: for any sequence of check-ins, duplicates, cancellations and late arrivals,
the real handlers on a real PostgreSQL (1) leave the ledger balanced, (2) never let a person
exceed the yearly budget and (3) decide exactly what the plain reference policy decides."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.claims import parking
from services.claims.cancellations import CancellationHandler
from services.claims.checkins import CheckInHandler
from shared import topics
from shared.consumer import BatchProcessor
from shared.deadletter import SourceRecord
from shared.envelope import new_envelope
from shared.events.checkins import CancellationReason, CheckInRecorded
from shared.outbox import headers_from_json
from tests.integration.claims import scenario
from tests.integration.claims.reference_policy import ReferencePolicy
from tests.support.cancellations import signed_cancellation

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class NewCheckIn:
    holder: int  # index into the world's cards; len(cards) = an unknown card
    provider: int
    activity: int
    minutes_before_now: int  # negative: from the future; large: a late arrival
    price_cents: int


@dataclass(frozen=True)
class Redeliver:
    target: int  # index among the check-ins sent so far
    new_envelope: bool  # the device re-sent it (new envelope) or Kafka redelivered it


@dataclass(frozen=True)
class Cancel:
    target: int  # index among ALL check-ins of the scenario: may not have arrived yet
    by_other_provider: bool


new_checkin = st.builds(
    NewCheckIn,
    holder=st.sampled_from([0, 0, 0, 1, 2, 3]),
    provider=st.sampled_from([0, 0, 0, 1, 1, 2]),
    activity=st.sampled_from([0, 0, 1, 2, 3]),
    # Recent, a day or weeks late (some past the 30-day window, some from before the
    # card was blocked or before the program year began), or from a clock that runs ahead.
    minutes_before_now=st.sampled_from(
        [
            0,
            5,
            60,
            600,
            1500,
            3000,
            6000,
            10000,
            0,
            60,
            1500,
            6000,
            13000,
            20000,
            22000,
            27000,
            40000,
            45000,
            -3,
            -600,
        ]
    ),
    price_cents=st.sampled_from([0, 1, 350, 1800, 4500, 4500, 6000, 6000, 6000]),
)
operation = st.one_of(
    new_checkin,
    new_checkin,
    new_checkin,
    new_checkin,
    st.builds(Redeliver, target=st.integers(0, 40), new_envelope=st.booleans()),
    st.builds(Cancel, target=st.integers(0, 40), by_other_provider=st.booleans()),
)
forgery = st.integers(0, 19).map(lambda n: n == 0)  # about one in twenty is forged


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[Any], list[bool], list[bool]]:
    ops = draw(st.lists(operation, min_size=20, max_size=50))
    forged = [draw(forgery) for _ in ops]
    cuts = draw(st.lists(st.booleans(), min_size=len(ops), max_size=len(ops)))
    return ops, forged, cuts


_migrated: set[str] = set()


def _signed(world: scenario.World, op: NewCheckIn, forged: bool) -> tuple[Any, CheckInRecorded]:
    device = world.devices[op.provider]
    number = (
        world.card_numbers[op.holder]
        if op.holder < len(world.card_numbers)
        else scenario.UNKNOWN_CARD
    )
    envelope, checkin = device.check_in(
        card_number=number,
        activity=scenario.ACTIVITIES[op.activity],
        price_cents=op.price_cents,
        occurred_at=scenario.NOW - timedelta(minutes=op.minutes_before_now),
    )
    if forged:
        checkin = checkin.model_copy(update={"price_cents": op.price_cents + 1})
    return envelope, checkin


async def _run(dsn: str, ops: list[Any], forged: list[bool], cuts: list[bool]) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    assert pool is not None
    try:
        if dsn not in _migrated:
            await scenario.prepare(pool)
            _migrated.add(dsn)
        world = await scenario.build_world(pool)
        await _check(pool, world, ops, forged, cuts)
    finally:
        await pool.close()


async def _check(
    pool: asyncpg.Pool, world: scenario.World, ops: list[Any], forged: list[bool], cuts: list[bool]
) -> None:
    policy = scenario.policy()
    reference = ReferencePolicy(
        scenario.POLICY,
        world.cards,
        world.providers,
        {d.device_id: d.provider_id for d in world.devices},
        scenario.NOW,
    )
    handler = CheckInHandler(policy, lambda: scenario.NOW)
    checkin_proc = BatchProcessor(
        "claims.checkins", (topics.CHECKIN_RECORDED,), handler, pool, prepare=handler.prepare
    )
    cancel_proc = BatchProcessor(
        "claims.cancellations", (topics.CHECKIN_CANCELLED,), CancellationHandler(policy), pool
    )
    # Every check-in of the scenario is made up front, so a cancellation can name one that
    # has not been delivered yet (a cancellation that overtakes its check-in).
    planned = [
        (_signed(world, op, f), f)
        for op, f in zip(ops, forged, strict=True)
        if isinstance(op, NewCheckIn)
    ]
    sent: list[tuple[Any, CheckInRecorded, bool]] = []
    messages: list[tuple[SourceRecord, Any]] = []
    next_new = 0
    for op in ops:
        if isinstance(op, NewCheckIn):
            (envelope, checkin), is_forged = planned[next_new]
            next_new += 1
            sent.append((envelope, checkin, is_forged))
            messages.append((world.record(envelope, checkin), ("checkin", checkin, is_forged)))
        elif isinstance(op, Redeliver) and sent:
            envelope, checkin, is_forged = sent[op.target % len(sent)]
            if op.new_envelope:
                envelope = new_envelope(type=topics.CHECKIN_RECORDED.event_type, source="/device")
            messages.append((world.record(envelope, checkin), ("checkin", checkin, is_forged)))
        elif isinstance(op, Cancel) and planned:
            (_, target), _ = planned[op.target % len(planned)]
            provider = (
                next(p for p in world.providers if p != target.provider_id)
                if op.by_other_provider
                else target.provider_id
            )
            # Signed by a device of the provider it names (another provider's cancels what
            # it may not: dead-lettered, or parked and never applied).
            envelope, cancel = signed_cancellation(
                world.device_of(provider),
                checkin_id=target.checkin_id,
                card_number=target.card_number,
                reason=CancellationReason.ACTIVITY_CANCELLED,
                cancelled_at=scenario.NOW,
            )
            messages.append((world.record(envelope, cancel), ("cancel", cancel, False)))
    # Deliver in batches (cut after a message where `cuts` says so, and wherever the topic
    # changes): each batch is one transaction of the real consumer.
    batch: list[SourceRecord] = []
    for index, (record, (kind, payload, is_forged)) in enumerate(messages):
        batch.append(record)
        if kind == "checkin":
            reference.checkin(payload, signature_ok=not is_forged)
        else:
            reference.cancel(payload)
        last = index == len(messages) - 1
        if last or cuts[index] or messages[index + 1][0].topic != record.topic:
            proc = checkin_proc if record.topic == topics.CHECKIN_RECORDED.name else cancel_proc
            await proc.process(batch)
            batch = []
    checkin_ids = {p[0][1].checkin_id for p in planned}
    await _card_never_came(pool, checkin_proc, checkin_ids)
    reference.card_never_came()
    await _compare(pool, world, reference, checkin_ids)


async def _card_never_came(
    pool: asyncpg.Pool, checkin_proc: BatchProcessor, checkin_ids: set[uuid.UUID]
) -> None:
    """The check-ins with an unknown card wait for it (parking.py); it never comes: they
    expire, are put back with their wait over, and are judged (unknown_card, or cancelled
    if their provider cancelled them meanwhile)."""
    await pool.execute(
        "UPDATE parked_checkins SET parked_at = parked_at - interval '32 days'"
        " WHERE checkin_id = ANY($1::uuid[])",
        list(checkin_ids),
    )
    async with pool.acquire() as conn, conn.transaction():
        await parking.expire(conn, parking.keep_for(scenario.policy()))
    rows = await pool.fetch(
        "SELECT seq, key, headers, payload FROM outbox WHERE topic = $1"
        " AND (convert_from(payload, 'UTF8')::jsonb ->> 'checkin_id')::uuid = ANY($2::uuid[])"
        " ORDER BY seq",
        topics.CHECKIN_RECORDED.name,
        list(checkin_ids),
    )
    copies = [
        SourceRecord(
            topics.CHECKIN_RECORDED.name,
            1,
            r["seq"],
            r["key"],
            r["payload"],
            headers_from_json(r["headers"]),
        )
        for r in rows
    ]
    if copies:
        await checkin_proc.process(copies)
    assert not await pool.fetchval(
        "SELECT count(*) FROM parked_checkins WHERE checkin_id = ANY($1::uuid[])",
        list(checkin_ids),
    )


async def _compare(
    pool: asyncpg.Pool,
    world: scenario.World,
    reference: ReferencePolicy,
    checkin_ids: set[uuid.UUID],
) -> None:
    async with pool.acquire() as conn:
        claims = await conn.fetch(
            "SELECT claim_id, checkin_id, outcome, reason, amount_cents, reversed_at FROM claims"
            " WHERE checkin_id = ANY($1::uuid[])",
            list(checkin_ids),
        )
        claim_ids = [c["claim_id"] for c in claims]
        transfers = await conn.fetch(
            "SELECT debit_account, credit_account, amount_cents, code, claim_id FROM transfers"
            " WHERE claim_id = ANY($1::uuid[])",
            claim_ids,
        )
        holders = [c.holder_id for c in world.cards.values()]
        budgets = await conn.fetch(
            "SELECT holder_id, period, used_cents, limit_cents FROM budget_usage"
            " WHERE holder_id = ANY($1::uuid[])",
            holders,
        )
        events = await conn.fetch(
            "SELECT topic, payload FROM outbox WHERE topic = ANY($1::text[])",
            [topics.CLAIM_APPROVED.name, topics.CLAIM_REJECTED.name, topics.CLAIM_REVERSED.name],
        )
    # Exactly one outcome per authenticated check-in, the one the reference gives.
    got = {c["checkin_id"]: (c["outcome"], c["reason"], int(c["amount_cents"])) for c in claims}
    assert len(got) == len(claims)
    want = {
        k: (o.outcome, o.reason, o.amount_cents)
        for k, o in reference.outcomes.items()
        if o.outcome != "unauthenticated"
    }
    assert got == want
    for outcome, reason, _ in want.values():
        event(f"{outcome}:{reason}")
    event(f"reversed:{len(reference.reversed_ids())}")
    outcome_events: dict[uuid.UUID, int] = {}
    reversed_events: set[uuid.UUID] = set()
    for e in events:
        body = json.loads(e["payload"])
        checkin = uuid.UUID(body["checkin_id"])
        if checkin not in checkin_ids:
            continue
        if e["topic"] == topics.CLAIM_REVERSED.name:
            assert checkin not in reversed_events, "a claim is reversed once"
            reversed_events.add(checkin)
            # Whom the approval paid: the holder is told a refund is withdrawn or a
            # discount at the till lapses by this, even before the approval reaches them.
            till = world.providers[uuid.UUID(body["provider_id"])].till_discount
            assert body["payee_kind"] == ("provider" if till else "card_holder")
        else:
            outcome_events[checkin] = outcome_events.get(checkin, 0) + 1
    assert outcome_events == dict.fromkeys(want, 1)
    assert {c["checkin_id"] for c in claims if c["reversed_at"]} == reference.reversed_ids()
    assert reversed_events == reference.reversed_ids()
    # Each claim's money is in the ledger: its transfers add up to its amount, and a reversed
    # claim's reversals take all of it back.
    posted: dict[tuple[uuid.UUID, str], int] = {}
    for t in transfers:
        key = (t["claim_id"], t["code"])
        posted[key] = posted.get(key, 0) + int(t["amount_cents"])
    assert {code for _, code in posted} <= {"claim_approved", "claim_reversed"}
    for c in claims:
        approved = posted.get((c["claim_id"], "claim_approved"), 0)
        assert approved == (int(c["amount_cents"]) if c["outcome"] != "rejected" else 0)
        assert posted.get((c["claim_id"], "claim_reversed"), 0) == (
            approved if c["reversed_at"] else 0
        )
    # The ledger holds what the reference says, account by account.
    balances: dict[str, int] = {}
    for t in transfers:
        balances[t["debit_account"]] = balances.get(t["debit_account"], 0) + int(t["amount_cents"])
        balances[t["credit_account"]] = balances.get(t["credit_account"], 0) - int(
            t["amount_cents"]
        )
    assert {a: b for a, b in balances.items() if b} == reference.balances()
    # No person past the yearly budget of any version, and usage is what the reference used.
    limit = max(v["yearly_budget_cents"] for v in scenario.POLICY["versions"])
    for b in budgets:
        assert 0 <= b["used_cents"] <= b["limit_cents"] <= limit
    used = {(b["holder_id"], b["period"]): int(b["used_cents"]) for b in budgets}
    assert {k: v for k, v in used.items() if v} == {k: v for k, v in reference.used.items() if v}


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=scenarios())
def test_claims_match_the_reference_policy(database: str, case: Any) -> None:
    ops, forged, cuts = case
    asyncio.run(_run(database, ops, forged, cuts))
