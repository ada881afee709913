"""The check-in handler: authenticate, judge and price a batch of check-ins in one
transaction, writing claims, ledger transfers, budget usage and the outcome events.

Concurrency: the rows of the batch's card holders are locked (in a fixed order) before
anything about them is read, so two consumers that share a holder after a rebalance judge
that holder's check-ins one after the other and can never overspend a budget or break a
frequency limit together. The budget CHECK constraint is the last guard.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

import asyncpg

from services.claims import ledger, parking
from services.claims.authentication import (
    KnownDevice,
    ReplacedKey,
    authenticate,
    awaits_newer_key,
    signed_before_rotation,
)
from services.claims.decisions import (
    CardAtCheckIn,
    CheckInFacts,
    Decision,
    ProviderView,
    check_timing,
    decide,
)
from services.claims.distribution import split_cost
from services.claims.eligibility import Grant, grant_on
from services.claims.frequency import Visit, limit_reached, reach_days, visit_windows
from services.claims.policy import RefundPolicy
from services.claims.signatures import SignatureChecks
from shared import topics
from shared.consumer import Incoming, after_commit
from shared.db import DbConnection
from shared.deadletter import DeadLetter, DeadLetterReason
from shared.envelope import Envelope
from shared.events.base import EventPayload
from shared.events.cards import CardStatus, ProviderMode
from shared.events.checkins import ActivityCategory, CheckInRecorded
from shared.events.claims import ClaimApproved, ClaimRejected, PayeeKind, RejectionReason
from shared.ids import uuid7
from shared.localtime import business_day
from shared.logging import get_logger, log_context
from shared.metrics import CheckInOutcomes
from shared.outbox import enqueue_events

log = get_logger(__name__)
SOURCE = "/vrijetijdspas/claims"

# Reasons that also send the message to the dead-letter topic: they point at a device
# problem or an attack, which operators must see, not only the card holder.
_DEAD_LETTER_REASONS = {
    RejectionReason.IN_THE_FUTURE: DeadLetterReason.IN_THE_FUTURE,
    RejectionReason.OUT_OF_WINDOW: DeadLetterReason.OUT_OF_WINDOW,
}
# The decided check-ins in one statement: their claims, their nonces (a nonce used twice
# violates the primary key and fails the batch) and the budget spent, as a delta, not a
# total: correct even if someone else wrote the row meanwhile; the CHECK (used <= limit)
# refuses the commit if that would overspend.
_DECIDED = """
WITH new_claims AS (
    INSERT INTO claims (claim_id, checkin_id, event_id, correlation_id, card_id, holder_id,
                        provider_id, device_id, activity_id, category, target_group,
                        price_cents, amount_cents, outcome, reason, detail, payee_kind,
                        occurred_at, decided_at, resident)
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::uuid[],
                         $6::uuid[], $7::uuid[], $8::uuid[], $9::text[], $10::text[],
                         $11::text[], $12::bigint[], $13::bigint[], $14::text[], $15::text[],
                         $16::text[], $17::text[], $18::timestamptz[], $19::timestamptz[],
                         $20::boolean[])
), new_nonces AS (
    INSERT INTO device_nonces (device_id, nonce, checkin_id)
    SELECT * FROM unnest($21::uuid[], $22::text[], $23::uuid[])
)
INSERT INTO budget_usage (holder_id, period, used_cents, limit_cents)
SELECT * FROM unnest($24::uuid[], $25::int[], $26::bigint[], $27::bigint[])
ON CONFLICT (holder_id, period) DO UPDATE
SET used_cents = budget_usage.used_cents + excluded.used_cents,
    limit_cents = greatest(budget_usage.limit_cents, excluded.limit_cents)
"""


# The batch's cards, and a lock on their holders' rows in a fixed order. The lock is a
# CTE the result refers to, so it is taken within this statement; the cards themselves
# need no lock (the projection only adds rows and status history).
_CARDS_AND_LOCK = """
WITH batch_cards AS (SELECT * FROM cards WHERE card_number = ANY($1::text[])),
locked AS (
    SELECT holder_id FROM holders WHERE holder_id IN (SELECT holder_id FROM batch_cards)
    ORDER BY holder_id FOR UPDATE
)
SELECT batch_cards.*, (SELECT count(*) FROM locked) AS locked_holders FROM batch_cards
"""
# Everything else the batch needs, read after the lock, in one round trip: one array of
# rows per question ($4: the batch's check-in ids, $7: its locked holders, whose budgets
# and grants it reads; $8-$10: per holder, the disjoint time ranges in which earlier
# visits can count against a frequency limit — not the holder's whole history). The
# visits are a LATERAL range scan of claims_holder_live per range: as a join, with
# statistics that lagged a fast-growing table, PostgreSQL hashed every live claim of every
# holder (28,000 rows for 900 ranges, 13 ms a batch), a cost that grows with the years of
# history a join would read.
_FACTS = """
SELECT
    ARRAY(SELECT ROW(device_id, provider_id, public_key, revoked_at, key_id) FROM devices
          WHERE device_id = ANY($1::uuid[])) AS devices,
    ARRAY(SELECT ROW(card_id, effective_at, status) FROM card_status_history
          WHERE card_id = ANY($2::uuid[]) ORDER BY card_id, effective_at) AS history,
    ARRAY(SELECT ROW(provider_id, effective_at, partner, mode) FROM provider_terms
          WHERE provider_id = ANY($3::uuid[]) ORDER BY provider_id, effective_at) AS providers,
    ARRAY(SELECT checkin_id FROM claims WHERE checkin_id = ANY($4::uuid[])) AS decided,
    ARRAY(SELECT ROW(device_id, nonce) FROM device_nonces
          WHERE (device_id, nonce) IN (SELECT * FROM unnest($5::uuid[], $6::text[]))) AS nonces,
    ARRAY(SELECT ROW(checkin_id, provider_id, reason) FROM pending_cancellations
          WHERE checkin_id = ANY($4::uuid[])) AS cancelled,
    ARRAY(SELECT ROW(holder_id, period, used_cents) FROM budget_usage
          WHERE holder_id = ANY($7::uuid[])) AS budgets,
    ARRAY(SELECT ROW(holder_id, target_group, eligible_from, eligible_until, grace_days)
          FROM holder_grants WHERE holder_id = ANY($7::uuid[])) AS grants,
    ARRAY(SELECT ROW(w.holder_id, c.occurred_at, c.activity_id, c.provider_id, c.category)
          FROM unnest($8::uuid[], $9::timestamptz[], $10::timestamptz[]) AS w(holder_id, f, t)
          CROSS JOIN LATERAL (
              SELECT occurred_at, activity_id, provider_id, category FROM claims
              WHERE holder_id = w.holder_id AND occurred_at BETWEEN w.f AND w.t
                AND outcome <> 'rejected' AND reversed_at IS NULL
              OFFSET 0  -- keeps the planner from flattening this back into a join
          ) AS c) AS visits,
    ARRAY(SELECT ROW(record_key, arrived_at, wait_over) FROM released_checkins
          WHERE record_key = ANY($11::uuid[])) AS released
"""


@dataclass
class _Context:
    """Everything the batch needs from the database, loaded in a few round trips."""

    devices: dict[uuid.UUID, KnownDevice]
    cards: dict[str, asyncpg.Record]
    history: dict[uuid.UUID, list[tuple[datetime, str]]]
    # Each provider's terms, oldest first, with the moment they took effect.
    providers: dict[uuid.UUID, list[tuple[datetime, ProviderView]]]
    decided: set[uuid.UUID]
    seen_nonces: set[tuple[uuid.UUID, str]]
    # Parked cancellations: each check-in's, by the (authenticated) provider that sent it.
    cancelled: dict[uuid.UUID, dict[uuid.UUID, str]]
    used: dict[tuple[uuid.UUID, int], int]
    grants: dict[uuid.UUID, list[Grant]] = field(default_factory=dict)
    visits: dict[uuid.UUID, list[Visit]] = field(default_factory=dict)
    # The batch's copies of parked check-ins: when their originals reached us, by copy key.
    released: dict[uuid.UUID, datetime] = field(default_factory=dict)
    # The copy keys of those whose wait is over (a card that never came): not parked again.
    wait_over: set[uuid.UUID] = field(default_factory=set)


@dataclass
class _Writes:
    claims: list[tuple[Any, ...]] = field(default_factory=list)
    unauthenticated: list[tuple[Any, ...]] = field(default_factory=list)
    nonces: list[tuple[Any, ...]] = field(default_factory=list)
    budget: dict[tuple[uuid.UUID, int], tuple[int, int]] = field(default_factory=dict)
    consumed_cancellations: list[uuid.UUID] = field(default_factory=list)
    transfers: list[ledger.Transfer] = field(default_factory=list)
    events: list[tuple[Envelope, EventPayload]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    # Each with when it reached us: waiting for its device or key, or for its card.
    parked: list[tuple[Incoming[CheckInRecorded], datetime]] = field(default_factory=list)
    awaiting_card: list[tuple[Incoming[CheckInRecorded], datetime]] = field(default_factory=list)
    released: list[uuid.UUID] = field(default_factory=list)  # copy keys read, now used
    claim_columns: list[list[Any]] = field(default_factory=list)  # the claims as written

    def spend(self, key: tuple[uuid.UUID, int], cents: int, limit: int) -> None:
        delta, old_limit = self.budget.get(key, (0, 0))
        self.budget[key] = (delta + cents, max(old_limit, limit))


class CheckInHandler:
    def __init__(
        self,
        policy: RefundPolicy,
        clock: Callable[[], datetime] | None = None,
        signatures: SignatureChecks | None = None,
        outcomes: CheckInOutcomes | None = None,
    ) -> None:
        self.policy = policy
        self._outcomes = outcomes
        self._clock = clock or (lambda: datetime.now(UTC))
        self._signatures = signatures or SignatureChecks()
        self._reach_days = reach_days(
            limit for version in policy.versions for limit in version.limits
        )

    def prepare(self, batch: list[Incoming[Any]]) -> None:
        """As soon as the batch is decoded: start its signature checks, which then run
        whenever the event loop waits (for this batch's reads, or the previous commit)."""
        self._signatures.start(_checkins(batch))

    async def __call__(self, conn: DbConnection, batch: list[Incoming[Any]]) -> list[DeadLetter]:
        checkins = [i for i in batch if isinstance(i.payload, CheckInRecorded)]
        if not checkins:
            return []
        payloads = [i.payload for i in checkins]
        self._signatures.start(payloads)  # if prepare() did not
        ctx = await self._load(conn, checkins)
        valid = await self._signatures.results(
            payloads, {d.device_id: d.public_key for d in ctx.devices.values()}
        )
        now = self._clock()
        if not all(valid):
            await _accept_replaced_keys(conn, checkins, valid, ctx, now)
        writes = _Writes(released=list(ctx.released))
        for incoming, signature_valid in zip(checkins, valid, strict=True):
            with log_context(correlation_id=incoming.correlation_id):
                self._judge(incoming, signature_valid, ctx, writes, now)
        await _store(conn, writes)
        if self._outcomes is not None:  # counted once the batch has committed
            after_commit(partial(_count, self._outcomes, writes))
        return writes.dead

    async def _load(self, conn: DbConnection, batch: Sequence[Incoming[Any]]) -> _Context:
        payloads: list[CheckInRecorded] = [i.payload for i in batch]
        # The cards, and the lock on their holders: in one round trip. Fixed order, so two
        # batches never deadlock. Every read about these holders comes in the next
        # statement, after the lock: what we read cannot change under us until we commit.
        cards = await conn.fetch(_CARDS_AND_LOCK, list({p.card_number for p in payloads}))
        holders = sorted({c["holder_id"] for c in cards})
        checkin_ids = list({p.checkin_id for p in payloads})
        holder_of = {c["card_number"]: c["holder_id"] for c in cards}
        # Only the records that name themselves copies are looked for (none, as a rule).
        copy_keys = [k for i in batch if (k := parking.copy_key(i)) is not None]
        windows = visit_windows(
            (
                (holder_of[p.card_number], p.occurred_at)
                for p in payloads
                if p.card_number in holder_of
            ),
            self._reach_days,
        )
        facts = await conn.fetchrow(
            _FACTS,
            list({p.device_id for p in payloads}),
            [c["card_id"] for c in cards],
            list({p.provider_id for p in payloads}),
            checkin_ids,
            [p.device_id for p in payloads],
            [p.nonce for p in payloads],
            holders,
            [w[0] for w in windows],
            [w[1] for w in windows],
            [w[2] for w in windows],
            copy_keys,
        )
        assert facts is not None  # a SELECT without FROM always returns its one row
        history: dict[uuid.UUID, list[tuple[datetime, str]]] = {}
        for card_id, effective_at, status in facts["history"]:
            history.setdefault(card_id, []).append((effective_at, status))
        ctx = _Context(
            devices={d[0]: KnownDevice(*d) for d in facts["devices"]},
            cards={c["card_number"]: c for c in cards},
            history=history,
            providers=_terms(facts["providers"]),
            decided=set(facts["decided"]),
            seen_nonces={(d, n) for d, n in facts["nonces"]},
            cancelled=_by_checkin(facts["cancelled"]),
            used={(h, period): int(used) for h, period, used in facts["budgets"]},
            released={key: arrived_at for key, arrived_at, _ in facts["released"]},
            wait_over={key for key, _, over in facts["released"] if over},
        )
        for holder_id, *grant in facts["grants"]:
            ctx.grants.setdefault(holder_id, []).append(Grant(*grant))
        for holder_id, occurred_at, activity_id, provider_id, category in facts["visits"]:
            ctx.visits.setdefault(holder_id, []).append(
                Visit(
                    business_day(occurred_at), activity_id, provider_id, ActivityCategory(category)
                )
            )
        return ctx

    def _judge(
        self,
        incoming: Incoming[Any],
        signature_valid: bool,
        ctx: _Context,
        w: _Writes,
        now: datetime,
    ) -> None:
        c: CheckInRecorded = incoming.payload
        if c.checkin_id in ctx.decided:
            log.info("duplicate check-in ignored", checkin_id=c.checkin_id)
            return
        # Judged against when the check-in reached the broker, where the broker says so: one
        # that arrived in time stays in time however late it is judged (a backlog, a replay,
        # a wait for its device in parking.py).
        received_at = _arrival(incoming, ctx, now)
        device = ctx.devices.get(c.device_id)
        if device is None:
            # Not known yet: its DeviceRegistered may still be on its way (parking.py).
            w.parked.append((incoming, received_at))
            log.warning(
                "check-in parked: device not known yet",
                checkin_id=c.checkin_id,
                device_id=c.device_id,
            )
            return
        failure = authenticate(
            c, device, (c.device_id, c.nonce) in ctx.seen_nonces, signature_valid
        )
        if (
            failure is not None
            and failure.reason is RejectionReason.BAD_SIGNATURE
            and awaits_newer_key(c, device)
        ):
            # Until that key's DeviceRegistered (parking.py).
            w.parked.append((incoming, received_at))
            log.warning(
                "check-in parked: signed with a key not known yet",
                checkin_id=c.checkin_id,
                device_id=c.device_id,
                key_id=c.key_id,
            )
            return
        if failure is not None:
            reason, detail = failure.reason, failure.detail
            w.unauthenticated.append(
                (incoming.envelope.id, c.checkin_id, c.device_id, reason.value, detail)
            )
            w.dead.append(DeadLetter(incoming.source, DeadLetterReason(reason.value), detail))
            log.warning(
                "check-in not authenticated",
                reason=reason.value,
                detail=detail,
                checkin_id=c.checkin_id,
            )
            return
        card_row = ctx.cards.get(c.card_number)
        if card_row is None and self._waits_for_card(incoming, ctx, received_at):
            # Its CardIssued may still be on its way (parking.py). No card number in the
            # log: the check-in's id leads to it.
            w.awaiting_card.append((incoming, received_at))
            log.warning(
                "check-in parked: card not known yet",
                checkin_id=c.checkin_id,
                device_id=c.device_id,
            )
            return
        ctx.seen_nonces.add((c.device_id, c.nonce))
        w.nonces.append((c.device_id, c.nonce, c.checkin_id))
        ctx.decided.add(c.checkin_id)
        card = (
            _card_at(card_row, ctx.history, ctx.grants, c.occurred_at)
            if card_row is not None
            else None
        )
        decision = self._cancelled_before(c, ctx, w) or check_timing(
            self.policy, c.occurred_at, received_at
        )
        if decision is not None and decision.reason in _DEAD_LETTER_REASONS:
            w.dead.append(
                DeadLetter(incoming.source, _DEAD_LETTER_REASONS[decision.reason], decision.detail)
            )
        if decision is None:
            decision = self._price(c, card, ctx)
        self._record(incoming, card, decision, ctx, w, now)

    def _waits_for_card(
        self, incoming: Incoming[Any], ctx: _Context, received_at: datetime
    ) -> bool:
        """Whether an authenticated check-in with a card claims does not know waits for the
        card: unless its wait is over (it waited as long as a check-in may: `unknown_card`
        now), or its outcome does not depend on the card — its own provider cancelled it,
        or it is in the future or out of its window — and it is judged at once as before."""
        c: CheckInRecorded = incoming.payload
        if ctx.wait_over and parking.copy_key(incoming) in ctx.wait_over:
            return False
        if c.provider_id in ctx.cancelled.get(c.checkin_id, {}):
            return False
        return check_timing(self.policy, c.occurred_at, received_at) is None

    @staticmethod
    def _cancelled_before(c: CheckInRecorded, ctx: _Context, w: _Writes) -> Decision | None:
        """The provider cancelled this check-in before it reached us: nothing to refund.
        Only its own provider's cancellation counts; another's is dropped with it (it was
        dead-lettered as `wrong_provider` had it come after the check-in)."""
        parked = ctx.cancelled.get(c.checkin_id)
        if not parked:
            return None
        w.consumed_cancellations.append(c.checkin_id)
        reason = parked.get(c.provider_id)
        if len(parked) > (reason is not None):
            log.warning("parked cancellation by another provider dropped", checkin_id=c.checkin_id)
        if reason is None:
            return None
        return Decision.reject(
            RejectionReason.CHECKIN_CANCELLED, f"cancelled by the provider: {reason}"[:300]
        )

    def _price(self, c: CheckInRecorded, card: CardAtCheckIn | None, ctx: _Context) -> Decision:
        provider = _provider_at(ctx.providers, c.provider_id, c.occurred_at)
        used = 0
        reached = None
        day = _day(c.occurred_at)
        if card is not None:
            used = ctx.used.get((card.holder_id, self.policy.budget_period(day)), 0)
            version = self.policy.version_on(day)
            if version is not None:
                reached = limit_reached(
                    version.limits, ctx.visits.get(card.holder_id, []), _visit(c)
                )
        facts = CheckInFacts(c.occurred_at, c.activity.category, c.price_cents)
        return decide(self.policy, facts, card, provider, used_cents=used, limit_reached=reached)

    def _record(
        self,
        incoming: Incoming[Any],
        card: CardAtCheckIn | None,
        decision: Decision,
        ctx: _Context,
        w: _Writes,
        now: datetime,
    ) -> None:
        c: CheckInRecorded = incoming.payload
        claim_id = uuid7()
        payee, own_share = None, 0
        if decision.approved and card is not None:
            payee, own_share = self._book(c, card, decision, claim_id, ctx, w)
        outcome = (
            "rejected" if not decision.approved else ("capped" if decision.capped else "approved")
        )
        w.claims.append(
            (
                claim_id,
                c.checkin_id,
                incoming.envelope.id,
                incoming.correlation_id,
                card.card_id if card else None,
                card.holder_id if card else None,
                c.provider_id,
                c.device_id,
                c.activity.id,
                c.activity.category.value,
                card.target_group if card else None,
                c.price_cents,
                decision.amount_cents,
                outcome,
                decision.reason.value if decision.reason else None,
                decision.detail,
                payee.value if payee else None,
                c.occurred_at,
                now,
                card.resident if card else None,
            )
        )
        payload = _outcome_event(
            c,
            card,
            decision,
            claim_id,
            payee or _payee(_provider_at(ctx.providers, c.provider_id, c.occurred_at)),
            now,
            own_share,
        )
        topic = topics.topic_for(payload)
        w.events.append((incoming.envelope.caused(type=topic.event_type, source=SOURCE), payload))
        log.info(
            "claim decided",
            outcome=outcome,
            reason=decision.reason.value if decision.reason else None,
            amount_cents=decision.amount_cents,
            checkin_id=c.checkin_id,
            claim_id=claim_id,
        )

    def _book(
        self,
        c: CheckInRecorded,
        card: CardAtCheckIn,
        decision: Decision,
        claim_id: uuid.UUID,
        ctx: _Context,
        w: _Writes,
    ) -> tuple[PayeeKind, int]:
        """Spend the budget, count the visit and post one transfer per payer share. The
        payee, and the provider's own share of the discount (netting.py sets it off against
        what a till-discount provider is paid; its statement says so)."""
        payee = _payee(_provider_at(ctx.providers, c.provider_id, c.occurred_at))
        assert payee is not None  # decide() approved, so the provider is known
        day = _day(c.occurred_at)
        version = self.policy.version_on(day)
        assert version is not None  # decide() approved, so a version is in force
        key = (card.holder_id, self.policy.budget_period(day))
        ctx.used[key] = ctx.used.get(key, 0) + decision.amount_cents
        w.spend(key, decision.amount_cents, version.yearly_budget_cents)
        ctx.visits.setdefault(card.holder_id, []).append(_visit(c))
        payee_id = card.holder_id if payee is PayeeKind.CARD_HOLDER else c.provider_id
        payable = ledger.payable_account(payee.value, payee_id)
        # The cost is booked on the target group of the grant in force that day.
        assert card.grant is not None  # decide() approved, so a grant covers the day
        own_share = 0
        for share in split_cost(
            decision.amount_cents, version.distribution, resident=card.resident
        ):
            if share.payer == "provider":
                own_share += share.amount_cents
            w.transfers.append(
                ledger.Transfer(
                    uuid7(),
                    ledger.cost_account(share.payer, card.grant.target_group, c.provider_id),
                    payable,
                    share.amount_cents,
                    "claim_approved",
                    claim_id=claim_id,
                )
            )
        return payee, own_share


def _checkins(batch: list[Incoming[Any]]) -> list[CheckInRecorded]:
    return [i.payload for i in batch if isinstance(i.payload, CheckInRecorded)]


def _day(at: datetime) -> date:
    return business_day(at)


def _visit(c: CheckInRecorded) -> Visit:
    return Visit(_day(c.occurred_at), c.activity.id, c.provider_id, c.activity.category)


def _outcome_event(
    c: CheckInRecorded,
    card: CardAtCheckIn | None,
    decision: Decision,
    claim_id: uuid.UUID,
    payee: PayeeKind | None,
    now: datetime,
    own_share_cents: int = 0,
) -> EventPayload:
    if decision.approved and card is not None and card.grant is not None and payee is not None:
        return ClaimApproved(
            claim_id=claim_id,
            checkin_id=c.checkin_id,
            card_id=card.card_id,
            holder_id=card.holder_id,
            provider_id=c.provider_id,
            activity_id=c.activity.id,
            category=c.activity.category,
            target_group=card.grant.target_group,
            price_cents=c.price_cents,
            amount_cents=decision.amount_cents,
            capped=decision.capped,
            payee_kind=payee,
            occurred_at=c.occurred_at,
            decided_at=now,
            own_share_cents=own_share_cents,
        )
    assert decision.reason is not None
    return ClaimRejected(
        claim_id=claim_id,
        checkin_id=c.checkin_id,
        card_id=card.card_id if card else None,
        holder_id=card.holder_id if card else None,
        provider_id=c.provider_id,
        activity_id=c.activity.id,
        reason=decision.reason,
        detail=decision.detail,
        occurred_at=c.occurred_at,
        decided_at=now,
        payee_kind=payee,
    )


async def _store(conn: DbConnection, w: _Writes) -> None:
    if w.claims:
        budget_keys = sorted(w.budget)  # a fixed order of row locks, like the holder lock
        w.claim_columns = [list(column) for column in zip(*w.claims, strict=True)]
        await conn.execute(
            _DECIDED,
            *w.claim_columns,
            *(list(column) for column in zip(*w.nonces, strict=True)),
            [k[0] for k in budget_keys],
            [k[1] for k in budget_keys],
            [w.budget[k][0] for k in budget_keys],
            [w.budget[k][1] for k in budget_keys],
        )
    if w.unauthenticated:
        await conn.executemany(
            "INSERT INTO unauthenticated_checkins (event_id, checkin_id, device_id, reason, detail)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            w.unauthenticated,
        )
    if w.consumed_cancellations:
        await conn.execute(
            "DELETE FROM pending_cancellations WHERE checkin_id = ANY($1::uuid[])",
            w.consumed_cancellations,
        )
    if w.released:
        await conn.execute(
            "DELETE FROM released_checkins WHERE record_key = ANY($1::uuid[])", w.released
        )
    await ledger.post(conn, w.transfers)
    await enqueue_events(conn, w.events)
    if w.parked or w.awaiting_card:
        # Last: it takes a lock (parking.py).
        await parking.park(conn, w.parked, w.awaiting_card)


def _count(outcomes: CheckInOutcomes, w: _Writes) -> None:
    """A batch's outcomes for the metrics, from the columns _store wrote: a few passes in
    C over lists, no Python per check-in (README, "Metrics": the cost per batch)."""
    tally: dict[tuple[str, str | None], int] = {}
    cents = 0
    if w.claim_columns:
        # _DECIDED's $13-$15. Only a rejection has a reason, and its amount is 0
        # (decisions.Decision): the sum is what was approved.
        amounts, kinds, reasons = w.claim_columns[12:15]
        rejected = Counter(filter(None, reasons))
        capped = kinds.count("capped")
        tally = {("rejected", reason): n for reason, n in rejected.items()}
        tally["approved", None] = len(kinds) - capped - rejected.total()
        tally["capped", None] = capped
        cents = sum(amounts)
    for unauthenticated in w.unauthenticated:  # few, as a rule none
        key = ("not_authenticated", unauthenticated[3])
        tally[key] = tally.get(key, 0) + 1
    outcomes.count(tally, cents, len(w.parked), len(w.awaiting_card))


def _by_checkin(rows: Iterable[Any]) -> dict[uuid.UUID, dict[uuid.UUID, str]]:
    parked: dict[uuid.UUID, dict[uuid.UUID, str]] = {}
    for checkin_id, provider_id, reason in rows:
        parked.setdefault(checkin_id, {})[provider_id] = reason
    return parked


def _terms(rows: Iterable[Any]) -> dict[uuid.UUID, list[tuple[datetime, ProviderView]]]:
    terms: dict[uuid.UUID, list[tuple[datetime, ProviderView]]] = {}
    for provider_id, effective_at, partner, mode in rows:  # oldest first (the query's order)
        terms.setdefault(provider_id, []).append(
            (effective_at, ProviderView(partner=partner, mode=ProviderMode(mode)))
        )
    return terms


def _provider_at(
    terms: dict[uuid.UUID, list[tuple[datetime, ProviderView]]],
    provider_id: uuid.UUID,
    at: datetime,
) -> ProviderView | None:
    """The provider's terms in force at `at`: the last that took effect at or before it, or
    the first for a check-in before any (a device scanning before its provider's
    registration reached claims). None: a provider claims does not know."""
    known = terms.get(provider_id)
    if not known:
        return None
    current = known[0][1]
    for effective_at, view in known:
        if effective_at > at:
            break
        current = view
    return current


def _payee(terms: ProviderView | None) -> PayeeKind | None:
    """Who a check-in's discount is paid to, as at the till when it happened: in
    till-discount mode the provider gave it; in refund mode the holder paid the full price."""
    if terms is None:
        return None
    return PayeeKind.PROVIDER if terms.mode is ProviderMode.TILL_DISCOUNT else PayeeKind.CARD_HOLDER


def _card_at(
    row: asyncpg.Record,
    history: dict[uuid.UUID, list[tuple[datetime, str]]],
    grants: dict[uuid.UUID, list[Grant]],
    at: datetime,
) -> CardAtCheckIn:
    """The card's status at `at`: the last change at or before it (active before any); and
    its holder's grant that day. A holder without recorded grants (no EligibilityChanged
    since holder_grants came) has the one grant its card row carries."""
    status = CardStatus.ACTIVE
    for effective_at, value in history.get(row["card_id"], []):
        if effective_at <= at:
            status = CardStatus(value)
    held = grants.get(row["holder_id"]) or [
        Grant(row["target_group"], row["eligible_from"], row["eligible_until"], row["grace_days"])
    ]
    return CardAtCheckIn(
        card_id=row["card_id"],
        holder_id=row["holder_id"],
        grant=grant_on(held, business_day(at)),
        status=status,
        resident=row["resident"],
    )


def _arrival(incoming: Incoming[Any], ctx: _Context, now: datetime) -> datetime:
    """When a check-in reached us: for the copy of a parked check-in, when its original did
    (parking.py); else the broker's time where its topic stamps one, else now (never later
    than now: a broker clock ahead of ours must not push a check-in out of its window)."""
    key = parking.copy_key(incoming) if ctx.released else None
    at = ctx.released.get(key) if key is not None else None
    return min(at or incoming.source.appended_at or now, now)


async def _accept_replaced_keys(
    conn: DbConnection,
    checkins: Sequence[Incoming[Any]],
    valid: list[bool],
    ctx: _Context,
    now: datetime,
) -> None:
    """Marks valid the check-ins signed with a key their device had when they reached the
    broker, since replaced by a rotation (authentication.signed_before_rotation). Only
    for signatures the current key refused: one more round trip, in a batch that has one."""
    failed = [i for i, ok in enumerate(valid) if not ok]
    devices = list({checkins[i].payload.device_id for i in failed} & ctx.devices.keys())
    if not devices:
        return
    replaced: dict[uuid.UUID, list[ReplacedKey]] = {}
    for row in await conn.fetch(_REPLACED_KEYS, devices):
        replaced.setdefault(row["device_id"], []).append(
            ReplacedKey(row["public_key"], row["superseded_at"])
        )
    for i in failed:
        incoming = checkins[i]
        keys = replaced.get(incoming.payload.device_id)
        if keys and signed_before_rotation(incoming.payload, keys, _arrival(incoming, ctx, now)):
            valid[i] = True


_REPLACED_KEYS = (
    "SELECT device_id, public_key, superseded_at FROM device_key_history"
    " WHERE device_id = ANY($1::uuid[])"
)
