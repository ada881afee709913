"""Payment runs against concurrent claims, reversals and runs, and their references: a
payment pays exactly the claims linked to it, and a reference never aborts a run."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from services.claims import ledger, payments, waiting_returns
from services.claims.api import readiness_figures
from services.claims.checkins import CheckInHandler
from services.claims.payments import run_payments, structured_reference
from services.claims.projections import apply_card_events
from shared import topics
from shared.consumer import BatchProcessor, Incoming
from shared.envelope import new_envelope
from shared.events import cards as ev
from shared.events.checkins import CheckInRecorded
from shared.events.payments import PaymentFailed, PaymentReturned, PaymentSettled
from shared.outbox import headers_from_json
from tests.integration.claims import scenario

pytestmark = pytest.mark.integration


@dataclass
class Payee:
    pool: asyncpg.Pool
    world: scenario.World
    card: str
    holder: uuid.UUID

    def checkin(self, activity: int) -> Incoming[CheckInRecorded]:
        envelope, checkin = self.world.devices[0].check_in(  # a refund partner
            card_number=self.card,
            activity=scenario.ACTIVITIES[activity],
            price_cents=4500,
            occurred_at=scenario.NOW - timedelta(minutes=5 + activity),
        )
        return Incoming(envelope, checkin, self.world.record(envelope, checkin))

    async def approved_claim(self, activity: int) -> uuid.UUID:
        """A check-in decided and committed on a connection of its own."""
        incoming = self.checkin(activity)
        policy = scenario.policy()
        async with self.pool.acquire() as conn, conn.transaction():
            await CheckInHandler(policy, lambda: scenario.NOW)(conn, [incoming])
            claim = await conn.fetchrow(
                "SELECT claim_id, outcome FROM claims WHERE checkin_id = $1",
                incoming.payload.checkin_id,
            )
        assert claim is not None and claim["outcome"] == "approved"
        return uuid.UUID(str(claim["claim_id"]))

    async def cancel(self, claim_id: uuid.UUID) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await scenario.cancel_claim(conn, self.world, self.card, claim_id, scenario.policy())

    async def record_account(self, sealed: str | None) -> None:
        """The desk records the holder's details with this (sealed) bank account, or none."""
        details = ev.HolderDetailsChanged(
            holder_id=self.holder,
            referrer_org_id=uuid.uuid4(),
            channel="email",
            language="nl",
            beneficiary_sealed=sealed,
            changed_at=scenario.NOW,
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await apply_card_events(conn, [scenario._incoming(details)])


@pytest.fixture
async def payee(database: str) -> AsyncIterator[Payee]:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=4)
    try:
        await scenario.prepare(pool)
        world = await scenario.build_world(pool, holders=2)
        card = world.card_numbers[1]  # a senior card, never blocked
        yield Payee(pool, world, card, world.cards[card].holder_id)
    finally:
        await pool.close()


def _during_the_run(
    monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], Awaitable[None]]
) -> list[object]:
    """Runs `meanwhile` once, after the run read the balances, before it links claims.
    Returns the list of link calls (one per payee and attempt)."""
    original = payments._link_unpaid_claims
    calls: list[object] = []

    async def link(*args: Any) -> list[uuid.UUID]:
        if not calls:
            await meanwhile()
        calls.append(args)
        return await original(*args)

    monkeypatch.setattr(payments, "_link_unpaid_claims", link)
    return calls


async def _payments(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """Each payment with the net amount its linked claims put on its payable account."""
    async with pool.acquire() as conn:
        return await conn.fetch(
            """
            SELECT p.payment_id, p.amount_cents, p.reference,
                   array(SELECT claim_id FROM payment_claims pc
                         WHERE pc.payment_id = p.payment_id ORDER BY claim_id) AS claim_ids,
                   (SELECT coalesce(sum(CASE WHEN t.credit_account = p.account
                                             THEN t.amount_cents ELSE -t.amount_cents END), 0)
                    FROM transfers t JOIN payment_claims pc USING (claim_id)
                    WHERE pc.payment_id = p.payment_id
                      AND p.account IN (t.credit_account, t.debit_account)) AS linked_cents
            FROM payments p ORDER BY p.created_at, p.payment_id
            """
        )


async def _amount(pool: asyncpg.Pool, claim_id: uuid.UUID) -> int:
    async with pool.acquire() as conn:
        return int(
            await conn.fetchval("SELECT amount_cents FROM claims WHERE claim_id = $1", claim_id)
        )


async def test_a_claim_committed_during_a_run_is_left_to_the_next_run(
    payee: Payee, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await payee.approved_claim(0)
    late: list[uuid.UUID] = []

    async def a_claim_commits() -> None:
        late.append(await payee.approved_claim(1))

    _during_the_run(monkeypatch, a_claim_commits)
    async with payee.pool.acquire() as conn:
        assert (await run_payments(conn))["payments"] == 1
    [paid] = await _payments(payee.pool)
    assert paid["claim_ids"] == [first]
    assert paid["amount_cents"] == paid["linked_cents"] == await _amount(payee.pool, first)

    monkeypatch.undo()
    async with payee.pool.acquire() as conn:
        assert (await run_payments(conn))["payments"] == 1
    _, then = await _payments(payee.pool)
    assert then["claim_ids"] == late
    assert then["amount_cents"] == then["linked_cents"] == await _amount(payee.pool, late[0])


async def test_a_claim_reversed_during_a_run_is_paid_net_after_running_again(
    payee: Payee, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = await payee.approved_claim(0)
    cancelled = await payee.approved_claim(1)
    calls = _during_the_run(monkeypatch, lambda: payee.cancel(cancelled))
    async with payee.pool.acquire() as conn:
        assert (await run_payments(conn))["payments"] == 1
    [paid] = await _payments(payee.pool)
    assert paid["claim_ids"] == sorted([kept, cancelled])
    assert paid["amount_cents"] == paid["linked_cents"] == await _amount(payee.pool, kept)
    assert len(calls) == 2  # the first attempt met the reversal and was rolled back


async def test_a_run_waiting_for_another_pays_nothing_twice(
    payee: Payee, monkeypatch: pytest.MonkeyPatch
) -> None:
    claim = await payee.approved_claim(0)
    second: list[asyncio.Task[dict[str, Any]]] = []

    async def another_run_starts_and_waits() -> None:
        async def run() -> dict[str, Any]:
            async with payee.pool.acquire() as conn:
                return await run_payments(conn)

        second.append(asyncio.create_task(run()))
        async with payee.pool.acquire() as conn:
            for _ in range(250):
                if await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event = 'advisory'"
                ):
                    return
                await asyncio.sleep(0.02)
        raise AssertionError("the second run did not wait for the run lock")

    calls = _during_the_run(monkeypatch, another_run_starts_and_waits)
    async with payee.pool.acquire() as conn:
        assert (await run_payments(conn))["payments"] == 1
    assert (await asyncio.wait_for(second[0], 10))["payments"] == 0
    # The second run's snapshot began after the first run's commit: it never set out to
    # pay (link) that balance again, not even in an attempt a conflict rolled back.
    assert len(calls) == 1
    [paid] = await _payments(payee.pool)
    assert paid["claim_ids"] == [claim]
    assert paid["amount_cents"] == paid["linked_cents"] == await _amount(payee.pool, claim)


async def test_a_reference_taken_by_an_older_payment_is_skipped(payee: Payee) -> None:
    await payee.approved_claim(0)
    older_account = f"payable:holder:{uuid.uuid4()}"
    async with payee.pool.acquire() as conn:
        await conn.execute("SELECT setval('payment_reference_numbers', 4242)")
        # A payment from before references were numbered: its random reference is the
        # very number the sequence gives next.
        run_id = uuid.uuid4()
        await conn.execute(
            "INSERT INTO payment_runs (run_id, payments, total_cents) VALUES ($1, 1, 100)", run_id
        )
        await conn.execute(
            "INSERT INTO accounts (account, kind) VALUES ($1, 'payable')", older_account
        )
        await conn.execute(
            "INSERT INTO payments (payment_id, run_id, payee_kind, payee_id, account,"
            " amount_cents, reference, claims, status)"
            " VALUES ($1, $2, 'card_holder', $3, $4, 100, $5, 0, 'settled')",
            uuid.uuid4(),
            run_id,
            uuid.uuid4(),
            older_account,
            structured_reference(4243),
        )
        result = await run_payments(conn)
        assert result["payments"] == 1
        reference = await conn.fetchval(
            "SELECT reference FROM payments WHERE run_id = $1", uuid.UUID(result["run_id"])
        )
    assert reference == structured_reference(4244)


async def _one_payment(payee: Payee) -> asyncpg.Record:
    """An approved claim, paid by a run: the payment requested."""
    await payee.approved_claim(0)
    async with payee.pool.acquire() as conn:
        assert (await run_payments(conn))["payments"] == 1
    [payment] = await _payments(payee.pool)
    return payment


async def test_an_answer_matching_no_payment_is_dead_lettered_a_repeat_is_not(
    payee: Payee,
) -> None:
    payment = await _one_payment(payee)

    amount = int(payment["amount_cents"])
    batch = [
        _answer(payee, uuid.uuid4(), amount),  # no such payment
        _answer(payee, payment["payment_id"], amount + 1),  # another amount
        _answer(payee, payment["payment_id"], amount),  # the real answer
        _answer(payee, payment["payment_id"], amount),  # and a repeat of it
    ]
    async with payee.pool.acquire() as conn, conn.transaction():
        refused = await payments.apply_settlements(conn, batch)
        status = await conn.fetchval(
            "SELECT status FROM payments WHERE payment_id = $1", payment["payment_id"]
        )
    assert [(r.source.offset, r.reason.value) for r in refused] == [
        (batch[0].source.offset, "unmatched"),
        (batch[1].source.offset, "unmatched"),
    ]
    assert "no payment" in refused[0].detail
    assert f"amount {amount + 1} cents differs" in refused[1].detail
    assert status == "settled"


async def test_an_answer_contradicting_the_first_is_dead_lettered(payee: Payee) -> None:
    payment = await _one_payment(payee)
    amount = int(payment["amount_cents"])
    batch = [
        _answer(payee, payment["payment_id"], amount),
        _answer(payee, payment["payment_id"], amount, settled=False),
    ]
    async with payee.pool.acquire() as conn, conn.transaction():
        refused = await payments.apply_settlements(conn, batch)
        status = await conn.fetchval(
            "SELECT status FROM payments WHERE payment_id = $1", payment["payment_id"]
        )
    assert [(r.source.offset, r.reason.value) for r in refused] == [
        (batch[1].source.offset, "unmatched")
    ]
    assert "settled before" in refused[0].detail
    assert status == "settled"


def _answer(
    payee: Payee,
    payment_id: uuid.UUID,
    amount_cents: int,
    *,
    settled: bool = True,
    reason_code: str = "AC01",
) -> Incoming[PaymentSettled | PaymentFailed]:
    answer: PaymentSettled | PaymentFailed
    if settled:
        answer = PaymentSettled(
            payment_id=payment_id,
            amount_cents=amount_cents,
            settled_at=scenario.NOW,
            bank_reference="BANK-1",
        )
    else:
        answer = PaymentFailed(
            payment_id=payment_id,
            amount_cents=amount_cents,
            failed_at=scenario.NOW,
            reason_code=reason_code,
            reason="geweigerd door de bank",
        )
    topic = topics.PAYMENT_SETTLED if settled else topics.PAYMENT_FAILED
    envelope = new_envelope(type=topic.event_type, source="/finance")
    return Incoming(envelope, answer, payee.world.record(envelope, answer))


async def test_a_refund_waits_for_the_holders_bank_account_then_is_paid_whole(
    payee: Payee,
) -> None:
    """A request without an account waited at finance for ever: finance cannot know whose
    it is, and the account recorded later never reached it."""
    await payee.record_account(None)  # registered without a bank account
    first = await payee.approved_claim(0)
    async with payee.pool.acquire() as conn:
        held = await run_payments(conn)
        again = await run_payments(conn)  # the next run, still without an account
    assert (held["payments"], held["held_without_bank_account"]) == (0, 1)
    assert held["held_cents"] == await _amount(payee.pool, first)
    assert (again["payments"], again["held_without_bank_account"]) == (0, 1)
    assert await _payments(payee.pool) == []
    # Announced once (notifications tells the holder and the referrer), not at every run.
    [announced] = await _outbox(payee.pool, topics.REFUND_HELD.name)
    assert (announced["holder_id"], announced["amount_cents"]) == (
        str(payee.holder),
        held["held_cents"],
    )

    second = await payee.approved_claim(1)
    await payee.record_account(scenario.SEALED_ACCOUNT)
    async with payee.pool.acquire() as conn:
        paid = await run_payments(conn)
    assert (paid["payments"], paid["held_without_bank_account"]) == (1, 0)
    [payment] = await _payments(payee.pool)
    assert payment["claim_ids"] == sorted([first, second])
    owed = await _amount(payee.pool, first) + await _amount(payee.pool, second)
    assert payment["amount_cents"] == payment["linked_cents"] == owed == paid["total_cents"]
    [requested] = await _outbox(payee.pool, topics.PAYMENT_REQUESTED.name)
    assert requested["beneficiary_sealed"] == scenario.SEALED_ACCOUNT
    # Paid, the hold is over: held again one day, the holder is told again.
    assert await payee.pool.fetchval("SELECT count(*) FROM held_refunds") == 0


async def _outbox(pool: asyncpg.Pool, topic: str) -> list[dict[str, Any]]:
    rows = await pool.fetch("SELECT payload FROM outbox WHERE topic = $1 ORDER BY seq", topic)
    return [json.loads(r["payload"]) for r in rows]


async def test_an_account_the_bank_refused_is_not_paid_again_until_it_changes(
    payee: Payee,
) -> None:
    """Paid again to a closed account at every run, a refund failed at every run (and the
    referrer heard so at every run). A refusal that is not about the account (the bank's
    reason not given) is paid again, to the same account."""

    async def run_and_answer(reason_code: str | None) -> dict[str, Any]:
        async with payee.pool.acquire() as conn:
            result = await run_payments(conn)
        if reason_code is not None and result["payments"]:
            payment = (await _payments(payee.pool))[-1]
            answer = _answer(
                payee,
                payment["payment_id"],
                int(payment["amount_cents"]),
                settled=False,
                reason_code=reason_code,
            )
            async with payee.pool.acquire() as conn, conn.transaction():
                assert await payments.apply_settlements(conn, [answer]) == []
        return result

    await payee.approved_claim(0)
    assert (await run_and_answer("MS03"))["payments"] == 1  # not the account's fault
    assert (await run_and_answer("AC04"))["payments"] == 1  # paid again: now "closed"
    held = await run_and_answer(None)
    assert (held["payments"], held["held_without_bank_account"]) == (0, 1)
    [announced] = await _outbox(payee.pool, topics.REFUND_HELD.name)
    assert announced["reason"] == "account_refused"

    # The desk records another account (sealed anew): the next run pays it all.
    await payee.record_account("sealed-another-account")
    paid = await run_and_answer(None)
    assert (paid["payments"], paid["held_without_bank_account"]) == (1, 0)
    requested = await _outbox(payee.pool, topics.PAYMENT_REQUESTED.name)
    assert [r["beneficiary_sealed"] for r in requested] == [
        scenario.SEALED_ACCOUNT,
        scenario.SEALED_ACCOUNT,
        "sealed-another-account",
    ]


async def test_an_erased_holders_refund_is_held_and_nobody_is_asked_for_an_account(
    payee: Payee,
) -> None:
    await payee.approved_claim(0)
    erased = ev.HolderErased(holder_id=payee.holder, erased_at=scenario.NOW)
    async with payee.pool.acquire() as conn, conn.transaction():
        await apply_card_events(conn, [scenario._incoming(erased)])
    async with payee.pool.acquire() as conn:
        held = await run_payments(conn)
    assert (held["payments"], held["held_without_bank_account"]) == (0, 1)
    assert await _outbox(payee.pool, topics.REFUND_HELD.name) == []


def _returned(
    payee: Payee, payment_id: uuid.UUID, amount_cents: int, reason_code: str
) -> Incoming[PaymentReturned]:
    """A return as finance sends it (each sending stamped anew, so not an inbox duplicate)."""
    answer = PaymentReturned(
        payment_id=payment_id,
        amount_cents=amount_cents,
        returned_at=scenario.NOW,
        reason_code=reason_code,
        reason="teruggestort door de bank",
    )
    envelope = new_envelope(type=topics.PAYMENT_RETURNED.event_type, source="/finance")
    return Incoming(envelope, answer, payee.world.record(envelope, answer))


async def _settled_payment(payee: Payee) -> tuple[uuid.UUID, int]:
    payment = await _one_payment(payee)
    amount = int(payment["amount_cents"])
    async with payee.pool.acquire() as conn, conn.transaction():
        assert (
            await payments.apply_settlements(conn, [_answer(payee, payment["payment_id"], amount)])
            == []
        )
    return payment["payment_id"], amount


async def test_a_returned_payment_is_booked_back_once_and_paid_by_the_next_run(
    payee: Payee,
) -> None:
    """The bank took back a refund it had booked: the ledger said paid, and nothing paid
    it again."""
    payment_id, amount = await _settled_payment(payee)
    [claim] = (await _payments(payee.pool))[0]["claim_ids"]
    account = f"payable:holder:{payee.holder}"
    async with payee.pool.acquire() as conn:
        before = await ledger.trial_balance(conn)
        async with conn.transaction():
            refused = await payments.apply_settlements(
                conn,
                [
                    _returned(payee, payment_id, amount, "MS03"),
                    _returned(payee, payment_id, amount, "MS03"),  # finance settled twice
                    _answer(payee, payment_id, amount),  # and the settlement again
                ],
            )
        after = await ledger.trial_balance(conn)
        returned = await conn.fetchrow(
            "SELECT status, reason_code FROM payments WHERE payment_id = $1", payment_id
        )
        transfers = await conn.fetch(
            "SELECT debit_account, credit_account, amount_cents FROM transfers"
            " WHERE payment_id = $1 AND code = 'payment_returned'",
            payment_id,
        )
    assert refused == []
    assert returned is not None
    assert (returned["status"], returned["reason_code"]) == ("returned", "MS03")
    # Once, from the bank back to what we owe the holder; the ledger still balances.
    assert [tuple(t) for t in transfers] == [(ledger.BANK, account, amount)]
    assert after[ledger.BANK] == before[ledger.BANK] + amount
    assert after[account] == before.get(account, 0) - amount  # owed again (a credit)
    assert sum(after.values()) == 0

    async with payee.pool.acquire() as conn:
        again = await run_payments(conn)
    assert (again["payments"], again["total_cents"]) == (1, amount)
    _, paid_again = await _payments(payee.pool)
    assert paid_again["claim_ids"] == [claim]
    assert paid_again["amount_cents"] == paid_again["linked_cents"] == amount


async def test_a_return_for_the_accounts_sake_holds_the_refund_until_another_account(
    payee: Payee,
) -> None:
    """Returned for the account's sake (closed after booking), even after a later payment
    was requested to it: the holder's refunds wait for another account."""
    payment_id, amount = await _settled_payment(payee)
    await payee.approved_claim(1)
    async with payee.pool.acquire() as conn:
        assert (await run_payments(conn))["payments"] == 1  # requested, not answered yet
        async with conn.transaction():
            assert (
                await payments.apply_settlements(
                    conn, [_returned(payee, payment_id, amount, "AC04")]
                )
                == []
            )
        held = await run_payments(conn)
    assert (held["payments"], held["held_without_bank_account"]) == (0, 1)
    assert held["held_cents"] == amount
    [announced] = await _outbox(payee.pool, topics.REFUND_HELD.name)
    assert announced["reason"] == "account_refused"

    await payee.record_account("sealed-another-account")
    async with payee.pool.acquire() as conn:
        paid = await run_payments(conn)
    assert (paid["payments"], paid["total_cents"]) == (1, amount)


async def test_a_return_of_a_payment_that_failed_is_dead_lettered(payee: Payee) -> None:
    """Also one read before the failure: it waited for a settlement that cannot come now."""
    payment = await _one_payment(payee)
    amount = int(payment["amount_cents"])
    batch: list[Incoming[Any]] = [
        _returned(payee, payment["payment_id"], amount, "AC04"),  # still requested: waits
        _answer(payee, payment["payment_id"], amount, settled=False, reason_code="MS03"),
        _returned(payee, payment["payment_id"], amount, "AC04"),  # failed, never paid
    ]
    async with payee.pool.acquire() as conn, conn.transaction():
        refused = await payments.apply_settlements(conn, batch)
        status = await conn.fetchval(
            "SELECT status FROM payments WHERE payment_id = $1", payment["payment_id"]
        )
        returns = await conn.fetchval(
            "SELECT count(*) FROM transfers WHERE code = 'payment_returned'"
        )
        waiting = await conn.fetchval("SELECT count(*) FROM waiting_returns")
    assert [(r.source.offset, r.reason.value) for r in refused] == [
        (batch[0].source.offset, "unmatched"),
        (batch[2].source.offset, "unmatched"),
    ]
    assert refused[0].source == batch[0].source  # the return as it came
    assert "the payment is failed, not settled" in refused[0].detail
    assert "the payment is failed, not settled" in refused[1].detail
    assert (status, returns, waiting) == ("failed", 0, 0)


def _settlements(payee: Payee) -> BatchProcessor:
    """Finance's answers as the claims service consumes them: inbox, dead letters."""
    return BatchProcessor(
        waiting_returns.CONSUMER,
        (topics.PAYMENT_SETTLED, topics.PAYMENT_FAILED, topics.PAYMENT_RETURNED),
        payments.apply_settlements,
        payee.pool,
    )


async def _dead_letters(pool: asyncpg.Pool) -> list[dict[str, str]]:
    rows = await pool.fetch(
        "SELECT headers FROM outbox WHERE topic = $1 ORDER BY seq", topics.DEAD_LETTER_TOPIC
    )
    return [
        {k: v.decode() for k, v in headers_from_json(r["headers"]) if k.startswith("dlq_")}
        for r in rows
    ]


async def test_a_return_read_before_its_settlement_waits_and_is_applied_with_it_once(
    payee: Payee,
) -> None:
    """Finance's answers come on different topics: after an outage of claims (or a
    redelivery) the return was read first and dead-lettered `unmatched`, and someone had
    to bring it back by hand for an order the system made."""
    payment = await _one_payment(payee)
    payment_id, amount = payment["payment_id"], int(payment["amount_cents"])
    [claim] = payment["claim_ids"]
    account = f"payable:holder:{payee.holder}"
    consumer = _settlements(payee)
    returned = _returned(payee, payment_id, amount, "MS03")
    settled = _answer(payee, payment_id, amount)
    async with payee.pool.acquire() as conn:
        before = await ledger.trial_balance(conn)

    await consumer.process([returned.source])
    await consumer.process([returned.source])  # delivered again: a duplicate
    async with payee.pool.acquire() as conn:
        status = await conn.fetchval(
            "SELECT status FROM payments WHERE payment_id = $1", payment_id
        )
        moved = await conn.fetchval(
            "SELECT count(*) FROM transfers WHERE payment_id = $1 AND code <> 'payment_requested'",
            payment_id,
        )
        ready = await readiness_figures(conn)
        stats_figures = await waiting_returns.figures(conn)
    assert (status, moved) == ("requested", 0)  # waiting: nothing changed yet
    assert ready["returns_waiting"] == stats_figures["returns_waiting"] == 1
    assert ready["returns_waiting_oldest_s"] is not None
    assert await _dead_letters(payee.pool) == []

    await consumer.process([settled.source])
    # Replays of both, and finance sending its file again (new records, same answers).
    await consumer.process([returned.source, settled.source])
    await consumer.process(
        [
            _returned(payee, payment_id, amount, "MS03").source,
            _answer(payee, payment_id, amount).source,
        ]
    )
    async with payee.pool.acquire() as conn:
        after = await ledger.trial_balance(conn)
        row = await conn.fetchrow(
            "SELECT status, reason_code, returned_at, closed_at FROM payments"
            " WHERE payment_id = $1",
            payment_id,
        )
        transfers = await conn.fetch(
            "SELECT code, debit_account, credit_account, amount_cents FROM transfers"
            " WHERE payment_id = $1 AND code <> 'payment_requested' ORDER BY transfer_id",
            payment_id,
        )
        figures = await waiting_returns.figures(conn)
    assert row is not None
    assert (row["status"], row["reason_code"]) == ("returned", "MS03")
    # Its place among the bank's answers: when claims read it.
    assert row["returned_at"] < row["closed_at"]
    assert [tuple(t) for t in transfers] == [
        ("payment_settled", ledger.IN_TRANSIT, ledger.BANK, amount),
        ("payment_returned", ledger.BANK, account, amount),
    ]
    assert after[ledger.BANK] == before.get(ledger.BANK, 0)
    assert after[ledger.IN_TRANSIT] == before[ledger.IN_TRANSIT] + amount
    assert after[account] == before.get(account, 0) - amount  # owed again (a credit)
    assert sum(after.values()) == 0
    assert (figures["returns_waiting"], figures["returns_waiting_oldest_s"]) == (0, None)
    assert await _dead_letters(payee.pool) == []

    async with payee.pool.acquire() as conn:
        again = await run_payments(conn)
    assert (again["payments"], again["total_cents"]) == (1, amount)
    _, paid_again = await _payments(payee.pool)
    assert paid_again["claim_ids"] == [claim]
    assert paid_again["amount_cents"] == paid_again["linked_cents"] == amount


async def test_a_return_and_its_settlement_in_one_batch_return_first(payee: Payee) -> None:
    payment = await _one_payment(payee)
    payment_id, amount = payment["payment_id"], int(payment["amount_cents"])
    batch: list[Incoming[Any]] = [
        _returned(payee, payment_id, amount, "AC04"),
        _answer(payee, payment_id, amount),
    ]
    await _settlements(payee).process([i.source for i in batch])
    async with payee.pool.acquire() as conn:
        status = await conn.fetchval(
            "SELECT status FROM payments WHERE payment_id = $1", payment_id
        )
        returns = await conn.fetchval(
            "SELECT count(*) FROM transfers WHERE code = 'payment_returned'"
        )
        waiting = await conn.fetchval("SELECT count(*) FROM waiting_returns")
        held = await run_payments(conn)
    assert (status, returns, waiting) == ("returned", 1, 0)
    assert await _dead_letters(payee.pool) == []
    # For the account's sake: the holder's refund waits for another account.
    assert (held["payments"], held["held_without_bank_account"]) == (0, 1)
    assert held["held_cents"] == amount


async def test_a_return_whose_payment_never_settles_is_dead_lettered_after_the_wait(
    payee: Payee,
) -> None:
    """Its settlement refused or never sent: the return does not wait for ever."""
    payment = await _one_payment(payee)
    payment_id, amount = payment["payment_id"], int(payment["amount_cents"])
    returned = _returned(payee, payment_id, amount, "MS03")
    await _settlements(payee).process([returned.source])
    async with payee.pool.acquire() as conn, conn.transaction():
        assert await waiting_returns.expire(conn) == 0  # still within its wait
    async with payee.pool.acquire() as conn:
        await conn.execute(
            "UPDATE waiting_returns SET waiting_since = now() - $1::interval",
            waiting_returns.WAIT + timedelta(minutes=1),
        )
        async with conn.transaction():
            assert await waiting_returns.expire(conn) == 1
        async with conn.transaction():
            assert await waiting_returns.expire(conn) == 0  # once
        status = await conn.fetchval(
            "SELECT status FROM payments WHERE payment_id = $1", payment_id
        )
        figures = await waiting_returns.figures(conn)
    [letter] = await _dead_letters(payee.pool)
    assert letter["dlq_reason"] == "unmatched"
    assert letter["dlq_consumer"] == "claims.settlements"
    assert (letter["dlq_source_topic"], letter["dlq_source_offset"]) == (
        topics.PAYMENT_RETURNED.name,
        str(returned.source.offset),
    )
    assert "the payment is requested, not settled" in letter["dlq_detail"]
    assert (status, figures["returns_waiting"]) == ("requested", 0)


async def test_a_return_of_no_payment_or_of_another_amount_is_dead_lettered_at_once(
    payee: Payee,
) -> None:
    """Claims creates a payment before finance can know its id: a return of one it does
    not have never finds it, and one of another amount would never match it."""
    payment = await _one_payment(payee)
    amount = int(payment["amount_cents"])
    batch = [
        _returned(payee, uuid.uuid4(), amount, "MS03"),
        _returned(payee, payment["payment_id"], amount + 1, "MS03"),
    ]
    async with payee.pool.acquire() as conn, conn.transaction():
        refused = await payments.apply_settlements(conn, batch)
        waiting = await conn.fetchval("SELECT count(*) FROM waiting_returns")
    assert [r.reason.value for r in refused] == ["unmatched", "unmatched"]
    assert "no payment" in refused[0].detail
    assert f"amount {amount + 1} cents differs" in refused[1].detail
    assert waiting == 0


@pytest.mark.parametrize("return_first", [True, False])
async def test_a_return_and_its_settlement_applied_at_once_by_two_processes(
    payee: Payee, return_first: bool
) -> None:
    """Two partitions, two processes: the return, not seeing the settlement yet, must not
    wait where the settlement, not seeing the return yet, does not look."""
    payment = await _one_payment(payee)
    payment_id, amount = payment["payment_id"], int(payment["amount_cents"])
    first, second = (
        (_returned(payee, payment_id, amount, "MS03"), _answer(payee, payment_id, amount))
        if return_first
        else (_answer(payee, payment_id, amount), _returned(payee, payment_id, amount, "MS03"))
    )
    async with payee.pool.acquire() as one, payee.pool.acquire() as other:
        transaction = one.transaction()
        await transaction.start()
        assert await payments.apply_settlements(one, [first]) == []

        async def meanwhile() -> list[Any]:
            async with other.transaction():
                return await payments.apply_settlements(other, [second])

        racing = asyncio.create_task(meanwhile())
        await asyncio.sleep(0.3)
        assert not racing.done()  # waits for the payment's row
        await transaction.commit()
        assert await racing == []
    async with payee.pool.acquire() as conn:
        status = await conn.fetchval(
            "SELECT status FROM payments WHERE payment_id = $1", payment_id
        )
        returns = await conn.fetchval(
            "SELECT count(*) FROM transfers WHERE code = 'payment_returned'"
        )
        waiting = await conn.fetchval("SELECT count(*) FROM waiting_returns")
    assert (status, returns, waiting) == ("returned", 1, 0)
