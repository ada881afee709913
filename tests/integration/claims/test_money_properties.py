"""The money of the claims service, under any sequence of approvals, cancellations, payment
runs, finance's answers (settled, failed, returned, and a return read before its payment's
settlement, which waits for it) and bank accounts recorded by the desk, on the real
handlers and a real PostgreSQL (a fresh database per example).

After every step:

1. The ledger balances: every transfer moves a positive amount between two different
   accounts, and the trial balance sums to zero.
2. The clearing account holds exactly the payments requested and not answered:
   `clearing:payments-in-transit` = -(sum of payments `requested`), and the bank exactly
   those settled and not returned: `bank:municipality` = -(sum of payments `settled`).
3. Per payee P, with payable(P) the credit balance of its payable account, receivable(P)
   the debit balance of a provider's `receivable:provider:<P>` (0 for a card holder),
   requested(P) and settled(P) the sums of its payments in those states (a returned payment
   is no longer settled, a failed one no longer requested) and owed(P) the sum, over its
   approved claims not reversed, of the amount less the provider's own share (the share
   is 0 for a card holder's refund: it is booked on the provider's receivable):

       payable(P) + requested(P) + settled(P) - receivable(P) = owed(P)

   Netting moves an amount from payable(P) to receivable(P) (or back), requesting from
   payable to requested, settling from requested to settled, a failure from requested back
   to payable, a return from settled back to payable: each leaves the sum unchanged, and
   an approval or a reversal changes both sides by the claim's net amount.
4. No claim is paid twice: a claim is linked to at most one payment that is requested or
   settled, and per payee

       requested(P) + settled(P) <= owed(P) + reversed_paid(P)

   where reversed_paid(P) is the net amount of P's reversed claims linked to a payment
   that is requested or settled: more than P is owed can only have gone out for claims
   reversed after they were paid (the payable then goes negative; payments.py).
5. A card holder held by a run (`held_refunds`) got no payment request from that run, and
   the runs hold exactly the holders a model says: owed something, with no account or
   with the account the bank refused or returned their last answered payment for (a
   return that waited for its settlement counts from when it was read).
6. The returns waiting for their settlement are exactly those read before it.

And the ledger's payable, receivable, in-transit and bank balances equal a plain model of
the steps (with netting as netting.py describes it).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import asyncpg
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from services.claims import ledger, payments
from services.claims.checkins import CheckInHandler
from services.claims.policy import RefundPolicy
from services.claims.projections import apply_card_events
from shared import topics
from shared.consumer import Incoming
from shared.envelope import new_envelope
from shared.events import cards as ev
from shared.events.base import EventPayload
from shared.events.payments import (
    ACCOUNT_REASON_CODES,
    PaymentFailed,
    PaymentReturned,
    PaymentSettled,
)
from tests.integration.claims import scenario
from tests.support.components import Infra

pytestmark = pytest.mark.integration

T = TypeVar("T")


def _policy() -> RefundPolicy:
    """The scenario's policy without budget or frequency limits (every check-in is
    approved, so the steps are about money), where a provider bears a fifth of the
    discount of a non-resident's claim and Flanders a fixed euro of every claim."""
    raw = copy.deepcopy(scenario.POLICY)
    version = raw["versions"][1]
    version["yearly_budget_cents"] = 10**9
    version["frequency_limits"] = []
    version["once_per_activity_per_day"] = False
    version["budget_lines_cents"] = {"poverty": 10**10, "senior": 10**10}
    version["distribution"] = [
        {
            "payer": "provider",
            "basis": "percent_of_total",
            "basis_points": 2000,
            "applies_to": "non_residents",
        },
        {"payer": "government:vlaanderen", "basis": "fixed", "amount_cents": 100},
    ]
    return RefundPolicy.model_validate(raw)


POLICY = _policy()
REFUND, TILL = 0, 1  # the world's devices: a refund-mode partner, a till-discount partner
ACCOUNT_REFUSED = "AC04"  # closed account: pay another one
NOT_THE_ACCOUNT = "AM05"  # duplicate payment: nothing to do with the account
RETURNED_NOT_THE_ACCOUNT = "MD06"  # refund requested by the customer
assert ACCOUNT_REFUSED in ACCOUNT_REASON_CODES
assert NOT_THE_ACCOUNT not in ACCOUNT_REASON_CODES
assert RETURNED_NOT_THE_ACCOUNT not in ACCOUNT_REASON_CODES

CARD = st.integers(0, 2)
PRICE = st.sampled_from([1000, 2400, 4500, 7000])

Payee = tuple[str, uuid.UUID]  # ("holder" | "provider", id)


def _netted(payable: int, receivable: int) -> int:
    """What a run moves from the till-discount provider's payable to its receivable: a
    share it owes, as far as we owe it something; a share we owe it back (a netted share
    of a claim reversed since), back whole."""
    if receivable < 0:
        return receivable
    if payable <= 0:
        return 0
    return min(payable, receivable)


@dataclass
class Claim:
    claim_id: uuid.UUID
    card: str
    payee: Payee
    net_cents: int  # the amount less the provider's own share (a till-discount claim)
    share_cents: int
    reversed: bool = False


@dataclass
class Payment:
    payment_id: uuid.UUID
    payee: Payee
    amount_cents: int
    sealed: str | None
    status: str = "requested"
    waiting: str | None = None  # the reason code of a return read before the settlement
    read_at: int = 0  # when that return was read (the model's clock)


@dataclass
class Template:
    infra: Infra
    name: str | None = None


class MoneyMachine(RuleBasedStateMachine):
    """One municipality (scenario.build_world: card 0 a resident, cards 1 and 2
    non-residents) in a database of its own, and a model of what its ledger should say."""

    template: Template  # set by the test

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        try:
            self.dsn, self.pool = self._run(self._open())
        except BaseException:
            self.loop.close()
            raise
        self.world = self._run(scenario.build_world(self.pool, holders=3))
        self.till = self.world.devices[TILL].provider_id
        self.accounts: dict[uuid.UUID, str | None] = {
            c.holder_id: scenario.SEALED_ACCOUNT for c in self.world.cards.values()
        }
        # The model: balances (payables and receivables as what is owed, credit positive).
        self.payable: dict[Payee, int] = {}
        self.receivable = 0  # what the till-discount provider owes us, as netting sees it
        self.claims: list[Claim] = []
        self.payments: list[Payment] = []
        # Per holder, the bank's last answer: (when, status, reason code, account).
        self.last_answer: dict[uuid.UUID, tuple[int, str, str | None, str | None]] = {}
        self.clock = itertools.count()
        self.held: set[uuid.UUID] = set()
        self.minutes = itertools.count()
        self.sealed_numbers = itertools.count(1)

    # -- plumbing ---------------------------------------------------------------------

    def _run(self, work: Awaitable[T]) -> T:
        return self.loop.run_until_complete(work)

    async def _open(self) -> tuple[str, asyncpg.Pool]:
        infra = self.template.infra
        if self.template.name is None:
            dsn = await infra.new_database()
            pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
            assert pool is not None
            await scenario.prepare(pool)
            await pool.close()
            self.template.name = dsn.rsplit("/", 1)[1]
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(infra.dsn("postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template.name}"')
        finally:
            await admin.close()
        dsn = infra.dsn(name)
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        assert pool is not None
        return dsn, pool

    async def _close(self) -> None:
        await self.pool.close()
        admin = await asyncpg.connect(self.template.infra.dsn("postgres"))
        try:
            await admin.execute(f'DROP DATABASE "{self.dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
        finally:
            await admin.close()

    def teardown(self) -> None:
        try:
            self._run(self._close())
        finally:
            self.loop.close()

    def _incoming(self, payload: EventPayload, topic: topics.Topic) -> Incoming[Any]:
        envelope = new_envelope(type=topic.event_type, source="/test")
        return Incoming(envelope, payload, self.world.record(envelope, payload))

    def _holder(self, card: int) -> uuid.UUID:
        return self.world.cards[self.world.card_numbers[card]].holder_id

    # -- steps ------------------------------------------------------------------------

    @initialize(first=st.lists(st.tuples(CARD, st.booleans(), PRICE), min_size=1, max_size=3))
    def start(self, first: list[tuple[int, bool, int]]) -> None:
        """Some claims and a first run, so that finance has payments to answer early."""
        for card, at_till, price in first:
            self.approve(card, at_till, price)
        self.run_payments()

    @rule(card=CARD, at_till=st.booleans(), price=PRICE)
    def approve(self, card: int, at_till: bool, price: int) -> None:
        """A check-in at the refund-mode provider (the holder is refunded) or at the
        till-discount provider (the provider is reimbursed), approved."""
        number = self.world.card_numbers[card]
        device = self.world.devices[TILL if at_till else REFUND]
        envelope, checkin = device.check_in(
            card_number=number,
            activity=scenario.ACTIVITIES[next(self.minutes) % len(scenario.ACTIVITIES)],
            price_cents=price,
            occurred_at=scenario.NOW - timedelta(minutes=600 - next(self.minutes)),
        )
        incoming = Incoming(envelope, checkin, self.world.record(envelope, checkin))

        async def book() -> tuple[Any, int]:
            async with self.pool.acquire() as conn, conn.transaction():
                await CheckInHandler(POLICY, lambda: scenario.NOW)(conn, [incoming])
                row = await conn.fetchrow(
                    "SELECT claim_id, outcome, amount_cents FROM claims WHERE checkin_id = $1",
                    checkin.checkin_id,
                )
                assert row is not None and row["outcome"] in ("approved", "capped"), row
                share = await conn.fetchval(
                    "SELECT coalesce(sum(amount_cents), 0) FROM transfers"
                    " WHERE claim_id = $1 AND debit_account = $2",
                    row["claim_id"],
                    ledger.provider_receivable(device.provider_id),
                )
            return row, int(share)

        row, share = self._run(book())
        amount = int(row["amount_cents"])
        resident = self.world.cards[number].resident
        assert (share > 0) == (not resident), "a non-resident's claim has a provider share"
        if at_till:
            payee: Payee = ("provider", self.till)
            self.payable[payee] = self.payable.get(payee, 0) + amount
            self.receivable += share
            claim = Claim(row["claim_id"], number, payee, amount - share, share)
        else:
            payee = ("holder", self._holder(card))
            self.payable[payee] = self.payable.get(payee, 0) + amount
            claim = Claim(row["claim_id"], number, payee, amount, 0)
        self.claims.append(claim)

    @precondition(lambda self: any(not c.reversed for c in self.claims))
    @rule(pick=st.integers(0, 20))
    def cancel(self, pick: int) -> None:
        """The provider cancels the check-in of an approved claim: it is reversed."""
        standing = [c for c in self.claims if not c.reversed]
        claim = standing[pick % len(standing)]

        async def reverse() -> None:
            async with self.pool.acquire() as conn, conn.transaction():
                await scenario.cancel_claim(conn, self.world, claim.card, claim.claim_id, POLICY)

        self._run(reverse())
        claim.reversed = True
        self.payable[claim.payee] -= claim.net_cents + claim.share_cents
        if claim.payee[0] == "provider":
            self.receivable -= claim.share_cents

    @rule()
    def run_payments(self) -> None:
        async def run() -> tuple[dict[str, Any], list[Any], set[uuid.UUID]]:
            async with self.pool.acquire() as conn:
                result = await payments.run_payments(conn)
                requested = await conn.fetch(
                    "SELECT payment_id, payee_kind, payee_id, amount_cents, beneficiary_sealed"
                    " FROM payments WHERE run_id = $1",
                    uuid.UUID(result["run_id"]),
                )
                held = {r[0] for r in await conn.fetch("SELECT holder_id FROM held_refunds")}
            return result, requested, held

        result, requested, held = self._run(run())
        # The model: net the till-discount provider's share, then pay every positive
        # payable but those of the holders held.
        till: Payee = ("provider", self.till)
        moved = _netted(self.payable.get(till, 0), self.receivable)
        self.payable[till] = self.payable.get(till, 0) - moved
        self.receivable -= moved
        assert result["netted_cents"] == moved
        event("run: share netted" if moved > 0 else "run: netting undone" if moved < 0 else "run")
        expected_held = {
            payee[1]
            for payee, owed in self.payable.items()
            if owed > 0 and payee[0] == "holder" and self._held(payee[1])
        }
        assert held == expected_held, "the runs hold exactly the holders that cannot be paid"
        if held:
            event("run: a holder held")
        if any(owed < 0 for owed in self.payable.values()):
            event("run: a payable in debit (a paid claim reversed)")
        expected = {
            payee: owed
            for payee, owed in self.payable.items()
            if owed > 0 and payee[1] not in expected_held
        }
        got = {
            ("holder" if r["payee_kind"] == "card_holder" else "provider", r["payee_id"]): int(
                r["amount_cents"]
            )
            for r in requested
        }
        assert len(got) == len(requested), "one payment per payee and run"
        assert got == expected
        assert not held & {r["payee_id"] for r in requested}, "a held holder was paid"
        # In the world's order, not the ids' (fresh each example): a step picks a payment by
        # its place, and picks the same one when Hypothesis replays the example.
        order = [self.till] + [self._holder(card) for card in range(3)]
        for r in sorted(requested, key=lambda r: order.index(r["payee_id"])):
            payee = ("holder" if r["payee_kind"] == "card_holder" else "provider", r["payee_id"])
            self.payable[payee] = 0
            self.payments.append(
                Payment(r["payment_id"], payee, int(r["amount_cents"]), r["beneficiary_sealed"])
            )
        self.held = held

    def _held(self, holder: uuid.UUID) -> bool:
        """No account, or the one the bank refused or returned the last answer for."""
        account = self.accounts[holder]
        if account is None:
            return True
        _, status, code, sealed = self.last_answer.get(holder, (0, "none", None, None))
        return (
            status in ("failed", "returned") and code in ACCOUNT_REASON_CODES and sealed == account
        )

    @precondition(lambda self: any(p.status == "requested" for p in self.payments))
    @rule(
        pick=st.integers(0, 20),
        answer=st.sampled_from(
            ["settled", "failed: account", "failed: other", "returned: account", "returned: other"]
        ),
    )
    def answer(self, pick: int, answer: str) -> None:
        """Finance answers a requested payment: settled (and, at once, returned by the
        bank), or failed; a failure or return for the account's sake holds a holder until
        another account is recorded, one for another reason does not."""
        open_ = [p for p in self.payments if p.status == "requested"]
        payment = open_[pick % len(open_)]
        if answer.startswith("failed"):
            self._fail(payment, ACCOUNT_REFUSED if answer.endswith("account") else NOT_THE_ACCOUNT)
            return
        returned_before = payment.waiting is not None
        self._settle(payment)
        if answer.startswith("returned") and returned_before:
            event("answer: returned again after a return that waited (a repeat)")
            self._return(payment, RETURNED_NOT_THE_ACCOUNT, repeat=True)
        elif answer.startswith("returned"):
            self._return(
                payment,
                ACCOUNT_REFUSED if answer.endswith("account") else RETURNED_NOT_THE_ACCOUNT,
            )

    @precondition(
        lambda self: any(p.status == "requested" and p.waiting is None for p in self.payments)
    )
    @rule(pick=st.integers(0, 20), for_the_account=st.booleans())
    def return_before_settlement(self, pick: int, for_the_account: bool) -> None:
        """The bank's return is read before its payment's settlement (another topic): it
        waits for it, and changes nothing meanwhile; no dead letter."""
        open_ = [p for p in self.payments if p.status == "requested" and p.waiting is None]
        payment = open_[pick % len(open_)]
        code = ACCOUNT_REFUSED if for_the_account else RETURNED_NOT_THE_ACCOUNT
        self._send_return(payment, code)
        payment.waiting = code
        payment.read_at = next(self.clock)

    @precondition(lambda self: any(p.status == "settled" for p in self.payments))
    @rule(pick=st.integers(0, 20), for_the_account=st.booleans())
    def return_payment(self, pick: int, for_the_account: bool) -> None:
        """The bank returns a payment it settled, some steps later."""
        settled = [p for p in self.payments if p.status == "settled"]
        payment = settled[pick % len(settled)]
        self._return(payment, ACCOUNT_REFUSED if for_the_account else RETURNED_NOT_THE_ACCOUNT)

    def _settle(self, payment: Payment) -> None:
        self._answer(
            PaymentSettled(
                payment_id=payment.payment_id,
                amount_cents=payment.amount_cents,
                settled_at=scenario.NOW,
                bank_reference="BANK-1",
            ),
            topics.PAYMENT_SETTLED,
        )
        if payment.waiting is None:
            payment.status = "settled"
            self._answered(payment, None)
            return
        # The return that waited is applied with the settlement, in its place among the
        # bank's answers: when it was read.
        event("settled: a return that waited applied")
        payment.status = "returned"
        self.payable[payment.payee] += payment.amount_cents
        self._answered(payment, payment.waiting, at=payment.read_at)
        payment.waiting = None

    def _fail(self, payment: Payment, code: str) -> None:
        # A return that waited can never apply now: dead-lettered `unmatched`.
        if payment.waiting is not None:
            event("failed: a return that waited dead-lettered")
        self._answer(
            PaymentFailed(
                payment_id=payment.payment_id,
                amount_cents=payment.amount_cents,
                failed_at=scenario.NOW,
                reason_code=code,
                reason="refused",
            ),
            topics.PAYMENT_FAILED,
            refused=0 if payment.waiting is None else 1,
        )
        payment.status = "failed"
        payment.waiting = None
        self.payable[payment.payee] += payment.amount_cents
        self._answered(payment, code)

    def _send_return(self, payment: Payment, code: str) -> None:
        self._answer(
            PaymentReturned(
                payment_id=payment.payment_id,
                amount_cents=payment.amount_cents,
                returned_at=scenario.NOW,
                reason_code=code,
                reason="returned",
            ),
            topics.PAYMENT_RETURNED,
        )

    def _return(self, payment: Payment, code: str, *, repeat: bool = False) -> None:
        self._send_return(payment, code)
        if repeat:
            return
        payment.status = "returned"
        self.payable[payment.payee] += payment.amount_cents
        self._answered(payment, code)

    def _answered(self, payment: Payment, code: str | None, at: int | None = None) -> None:
        """A holder's last answered payment: what decides a hold (payments._hold_reasons).
        `at`: when the answer counts, if not now."""
        when = next(self.clock) if at is None else at
        holder = payment.payee[1]
        if payment.payee[0] == "holder" and when >= self.last_answer.get(holder, (-1,))[0]:
            self.last_answer[holder] = (when, payment.status, code, payment.sealed)

    def _answer(self, payload: EventPayload, topic: topics.Topic, refused: int = 0) -> None:
        async def apply() -> None:
            async with self.pool.acquire() as conn, conn.transaction():
                letters = await payments.apply_settlements(conn, [self._incoming(payload, topic)])
            assert [(d.reason.value, d.source.topic) for d in letters] == [
                ("unmatched", topics.PAYMENT_RETURNED.name)
            ] * refused

        self._run(apply())

    @rule(card=CARD, another=st.sampled_from([True, True, True, False]))
    def record_account(self, card: int, another: bool) -> None:
        """The desk records another bank account of the holder (or that there is none)."""
        holder = self._holder(card)
        sealed = f"sealed-account-{next(self.sealed_numbers)}" if another else None
        details = ev.HolderDetailsChanged(
            holder_id=holder,
            referrer_org_id=uuid.uuid4(),
            channel="email",
            language="nl",
            beneficiary_sealed=sealed,
            changed_at=scenario.NOW,
        )

        async def apply() -> None:
            async with self.pool.acquire() as conn, conn.transaction():
                await apply_card_events(conn, [scenario._incoming(details)])

        self._run(apply())
        self.accounts[holder] = sealed

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def the_money_adds_up(self) -> None:
        self._run(self._check())

    async def _check(self) -> None:
        async with self.pool.acquire() as conn:
            balances = await ledger.trial_balance(conn)
            bad = await conn.fetchval(
                "SELECT count(*) FROM transfers"
                " WHERE amount_cents <= 0 OR debit_account = credit_account"
            )
            rows = await conn.fetch(
                "SELECT payee_kind, payee_id, status, sum(amount_cents) AS cents FROM payments"
                " GROUP BY 1, 2, 3"
            )
            claims = await conn.fetch(
                """
                SELECT c.claim_id, c.payee_kind,
                       CASE WHEN c.payee_kind = 'card_holder' THEN c.holder_id
                            ELSE c.provider_id END AS payee_id,
                       c.amount_cents, c.reversed_at IS NOT NULL AS reversed,
                       coalesce((SELECT sum(t.amount_cents) FROM transfers t
                                 WHERE t.claim_id = c.claim_id AND t.code = 'claim_approved'
                                   AND t.debit_account = 'receivable:provider:' || c.provider_id
                                   AND c.payee_kind = 'provider'), 0) AS own_share,
                       (SELECT p.status FROM payments p WHERE p.payment_id = c.payment_id)
                           AS linked_status,
                       (SELECT count(*) FROM payment_claims pc JOIN payments p USING (payment_id)
                        WHERE pc.claim_id = c.claim_id
                          AND p.status IN ('requested', 'settled')) AS live_payments
                FROM claims c WHERE c.outcome <> 'rejected'
                """
            )
            paid_while_held = await conn.fetchval(
                "SELECT count(*) FROM held_refunds h JOIN payments p"
                " ON p.payee_kind = 'card_holder' AND p.payee_id = h.holder_id"
                " AND p.created_at >= h.held_at"
            )
            held = {r[0] for r in await conn.fetch("SELECT holder_id FROM held_refunds")}
            waiting = {r[0] for r in await conn.fetch("SELECT payment_id FROM waiting_returns")}
        # 1. Balanced.
        assert bad == 0
        assert sum(balances.values()) == 0
        # 2. In transit: requested and unanswered; at the bank: settled, not returned.
        by_status: dict[str, int] = {}
        per_payee: dict[tuple[Payee, str], int] = {}
        for r in rows:
            payee: Payee = (
                "holder" if r["payee_kind"] == "card_holder" else "provider",
                r["payee_id"],
            )
            by_status[r["status"]] = by_status.get(r["status"], 0) + int(r["cents"])
            per_payee[(payee, r["status"])] = int(r["cents"])
        assert balances.get(ledger.IN_TRANSIT, 0) == -by_status.get("requested", 0)
        assert balances.get(ledger.BANK, 0) == -by_status.get("settled", 0)
        # 3 and 4, per payee.
        owed: dict[Payee, int] = {}
        reversed_paid: dict[Payee, int] = {}
        for c in claims:
            assert c["live_payments"] <= 1, f"claim {c['claim_id']} is paid twice"
            payee = ("holder" if c["payee_kind"] == "card_holder" else "provider", c["payee_id"])
            net = int(c["amount_cents"]) - int(c["own_share"])
            owed.setdefault(payee, 0)
            if not c["reversed"]:
                owed[payee] += net
            elif c["linked_status"] in ("requested", "settled"):
                reversed_paid[payee] = reversed_paid.get(payee, 0) + net
        for payee, total in owed.items():
            kind, payee_id = payee
            payable = -balances.get(
                ledger.payable_account("card_holder" if kind == "holder" else "provider", payee_id),
                0,
            )
            receivable = (
                balances.get(ledger.provider_receivable(payee_id), 0) if kind == "provider" else 0
            )
            requested = per_payee.get((payee, "requested"), 0)
            settled = per_payee.get((payee, "settled"), 0)
            assert payable + requested + settled - receivable == total, payee
            assert requested + settled <= total + reversed_paid.get(payee, 0), (
                f"{payee} was paid more than it is owed"
            )
        # 5. Held holders: no payment requested since the run that held them.
        assert paid_while_held == 0
        assert held == self.held
        # 6. Waiting returns.
        assert waiting == {p.payment_id for p in self.payments if p.waiting is not None}
        # The model.
        for payee, want in self.payable.items():
            kind, payee_id = payee
            account = ledger.payable_account(
                "card_holder" if kind == "holder" else "provider", payee_id
            )
            assert -balances.get(account, 0) == want, account
        assert balances.get(ledger.provider_receivable(self.till), 0) == self.receivable
        assert -balances.get(ledger.IN_TRANSIT, 0) == sum(
            p.amount_cents for p in self.payments if p.status == "requested"
        )
        assert -balances.get(ledger.BANK, 0) == sum(
            p.amount_cents for p in self.payments if p.status == "settled"
        )


def test_money_adds_up_whatever_happens(infra: Infra) -> None:
    MoneyMachine.template = Template(infra)
    run_state_machine_as_test(
        MoneyMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
