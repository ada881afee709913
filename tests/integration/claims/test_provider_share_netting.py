"""A provider bearing a share of the discount cost (distribution key) in till-discount mode:
the payment run pays it the discount less its own share, and keeps doing so correctly when
a claim is reversed after its share was netted or while the run reads the balances."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.claims import ledger, payments
from services.claims.checkins import CheckInHandler
from services.claims.payments import run_payments
from services.claims.policy import RefundPolicy
from services.claims.reports import monthly_report
from shared import topics
from shared.consumer import Incoming
from shared.envelope import new_envelope
from shared.events.payments import PaymentSettled
from shared.localtime import LOCAL_TIME
from tests.integration.claims import scenario

pytestmark = pytest.mark.integration


def _policy() -> RefundPolicy:
    """The scenario's policy, whose version in force at NOW makes a provider bear 20 % of
    the discount cost of a non-resident's claim (and Flanders a fixed euro of every claim).
    At 45 euro paid: a non-resident senior's discount is 15 euro (3 of them the provider's
    share), a resident in poverty's 22,50 euro (no provider share)."""
    raw = copy.deepcopy(scenario.POLICY)
    raw["versions"][1]["distribution"] = [
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
SENIOR_DISCOUNT, SENIOR_PROVIDER_SHARE = 1500, 300
POVERTY_DISCOUNT = 2250


@dataclass
class Till:
    pool: asyncpg.Pool
    world: scenario.World
    provider: uuid.UUID  # in till-discount mode
    refund_provider: uuid.UUID

    @property
    def payable(self) -> str:
        return ledger.payable_account("provider", self.provider)

    @property
    def receivable(self) -> str:
        return ledger.cost_account("provider", "senior", self.provider)

    async def claim(self, card: int, activity: int, *, device: int = 1) -> uuid.UUID:
        """An approved claim for a check-in at 45 euro, committed on its own connection.
        Card 0 is a resident in poverty, card 1 a non-resident senior; device 1 is the
        till-discount provider's, device 0 a refund-mode provider's."""
        envelope, checkin = self.world.devices[device].check_in(
            card_number=self.world.card_numbers[card],
            activity=scenario.ACTIVITIES[activity],
            price_cents=4500,
            occurred_at=scenario.NOW - timedelta(minutes=5 + activity),
        )
        incoming = Incoming(envelope, checkin, self.world.record(envelope, checkin))
        async with self.pool.acquire() as conn, conn.transaction():
            await CheckInHandler(POLICY, lambda: scenario.NOW)(conn, [incoming])
            claim = await conn.fetchrow(
                "SELECT claim_id, outcome FROM claims WHERE checkin_id = $1", checkin.checkin_id
            )
        assert claim is not None and claim["outcome"] == "approved", claim
        return uuid.UUID(str(claim["claim_id"]))

    async def cancel(self, card: int, claim_id: uuid.UUID) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await scenario.cancel_claim(
                conn, self.world, self.world.card_numbers[card], claim_id, POLICY
            )

    async def run(self) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            return await run_payments(conn)

    async def requested(self, payee: uuid.UUID) -> list[asyncpg.Record]:
        return await self.pool.fetch(
            "SELECT payment_id, amount_cents FROM payments WHERE payee_id = $1"
            " ORDER BY created_at, payment_id",
            payee,
        )

    async def balances(self) -> dict[str, int]:
        async with self.pool.acquire() as conn:
            return await ledger.trial_balance(conn)

    async def netted(self) -> list[tuple[str, str, int, str]]:
        rows = await self.pool.fetch(
            "SELECT debit_account, credit_account, amount_cents, code FROM transfers"
            " WHERE code LIKE 'provider_share_%' ORDER BY created_at, transfer_id"
        )
        return [tuple(r) for r in rows]

    async def settle(self, payment_id: uuid.UUID, amount: int) -> None:
        answer = PaymentSettled(
            payment_id=payment_id,
            amount_cents=amount,
            settled_at=scenario.NOW,
            bank_reference="BANK-1",
        )
        envelope = new_envelope(type=topics.PAYMENT_SETTLED.event_type, source="/finance")
        incoming = Incoming(envelope, answer, self.world.record(envelope, answer))
        async with self.pool.acquire() as conn, conn.transaction():
            assert await payments.apply_settlements(conn, [incoming]) == []


@pytest.fixture
async def till(database: str) -> AsyncIterator[Till]:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=4)
    try:
        await scenario.prepare(pool)
        world = await scenario.build_world(pool, holders=2)
        refund, provider = world.devices[0].provider_id, world.devices[1].provider_id
        assert world.providers[provider].till_discount
        assert not world.providers[refund].till_discount
        yield Till(pool, world, provider, refund)
    finally:
        await pool.close()


async def test_a_till_discount_provider_is_paid_the_discount_less_its_own_share(
    till: Till,
) -> None:
    """It gave the whole discount at the till and bears a fifth of it: paid the whole
    discount, it was paid its own share, which the municipality then had to invoice back."""
    await till.claim(1, 0)
    await till.claim(1, 1)
    # A refund-mode provider's share has no payable to be netted against: it stays owed.
    await till.claim(1, 2, device=0)

    result = await till.run()

    owed = 2 * (SENIOR_DISCOUNT - SENIOR_PROVIDER_SHARE)
    [payment] = await till.requested(till.provider)
    assert payment["amount_cents"] == owed
    assert result["netted_cents"] == 2 * SENIOR_PROVIDER_SHARE
    assert await till.netted() == [
        (till.payable, till.receivable, 2 * SENIOR_PROVIDER_SHARE, "provider_share_netted")
    ]
    balances = await till.balances()
    assert balances.get(till.payable, 0) == 0
    assert balances.get(till.receivable, 0) == 0  # it owes nothing any more
    # Requested (credits): the provider's net amount and the holder's refund.
    assert balances[ledger.IN_TRANSIT] == -(owed + SENIOR_DISCOUNT)
    refund_receivable = ledger.cost_account("provider", "senior", till.refund_provider)
    assert balances[refund_receivable] == SENIOR_PROVIDER_SHARE  # for the monthly report
    assert await till.requested(till.refund_provider) == []
    assert sum(balances.values()) == 0


async def test_each_approval_tells_the_providers_own_share(till: Till) -> None:
    """The provider's statement (notifications) says what it is paid: the discounts less its
    own share, which each ClaimApproved carries (0 where the provider bears none)."""
    senior = await till.claim(1, 0)
    resident = await till.claim(0, 1)
    rows = await till.pool.fetch(
        "SELECT payload FROM outbox WHERE topic = $1", topics.CLAIM_APPROVED.name
    )
    shares = {
        uuid.UUID(p["claim_id"]): (p["amount_cents"], p["own_share_cents"])
        for p in (json.loads(r["payload"]) for r in rows)
    }
    assert shares == {
        senior: (SENIOR_DISCOUNT, SENIOR_PROVIDER_SHARE),
        resident: (POVERTY_DISCOUNT, 0),
    }


async def test_a_claim_reversed_after_its_share_was_netted_is_made_up_exactly(
    till: Till,
) -> None:
    """Reversed after the run, a claim takes its whole discount back from the payable and
    its share from the receivable, which then says we owe the provider that share. The next
    run moves it back onto the payable: paid, the provider has had exactly the discounts
    of the claims that stand, less its shares of them."""
    first = await till.claim(1, 0)
    await till.run()
    [paid] = await till.requested(till.provider)
    assert paid["amount_cents"] == SENIOR_DISCOUNT - SENIOR_PROVIDER_SHARE
    await till.settle(paid["payment_id"], int(paid["amount_cents"]))
    await till.cancel(1, first)
    # A resident's claim: no provider share of it to net.
    await till.claim(0, 1)

    result = await till.run()

    _, again = await till.requested(till.provider)
    assert again["amount_cents"] == POVERTY_DISCOUNT - (SENIOR_DISCOUNT - SENIOR_PROVIDER_SHARE)
    assert result["netted_cents"] == -SENIOR_PROVIDER_SHARE
    assert await till.netted() == [
        (till.payable, till.receivable, SENIOR_PROVIDER_SHARE, "provider_share_netted"),
        (till.receivable, till.payable, SENIOR_PROVIDER_SHARE, "provider_share_netting_undone"),
    ]
    balances = await till.balances()
    assert balances.get(till.payable, 0) == 0
    assert balances.get(till.receivable, 0) == 0
    # Everything the provider was paid (credits): the discount of the claim that stands.
    assert balances[ledger.BANK] + balances[ledger.IN_TRANSIT] == -POVERTY_DISCOUNT
    assert sum(balances.values()) == 0


async def test_a_claim_reversed_during_the_run_is_netted_once_by_the_attempt_that_pays(
    till: Till, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = await till.claim(1, 0)
    cancelled = await till.claim(1, 1)
    original = payments._link_unpaid_claims
    calls: list[object] = []

    async def link(*args: Any) -> list[uuid.UUID]:
        if not calls:  # after the balances were read and netted, before the claims link
            await till.cancel(1, cancelled)
        calls.append(args)
        return await original(*args)

    monkeypatch.setattr(payments, "_link_unpaid_claims", link)
    result = await till.run()

    assert len(calls) == 2  # the first attempt met the reversal and was rolled back
    [payment] = await till.requested(till.provider)
    assert payment["amount_cents"] == SENIOR_DISCOUNT - SENIOR_PROVIDER_SHARE
    assert result["netted_cents"] == SENIOR_PROVIDER_SHARE
    assert await till.netted() == [
        (till.payable, till.receivable, SENIOR_PROVIDER_SHARE, "provider_share_netted")
    ]
    linked = await till.pool.fetchval(
        "SELECT array_agg(claim_id ORDER BY claim_id) FROM claims WHERE payment_id = $1",
        payment["payment_id"],
    )
    assert linked == sorted([kept, cancelled])
    balances = await till.balances()
    assert balances.get(till.payable, 0) == balances.get(till.receivable, 0) == 0


async def test_netting_leaves_the_monthly_report_per_payer_as_it_was(till: Till) -> None:
    """The report shows each payer's share of the discount cost, which a settlement of
    what the provider owes against what we owe it does not change."""
    await till.claim(1, 0)
    await till.claim(0, 1)
    month = datetime.now(UTC).astimezone(LOCAL_TIME).strftime("%Y-%m")
    async with till.pool.acquire() as conn:
        before = await monthly_report(conn, POLICY, month)
    result = await till.run()
    async with till.pool.acquire() as conn:
        after = await monthly_report(conn, POLICY, month)

    assert result["netted_cents"] == SENIOR_PROVIDER_SHARE
    assert after == before
    shares = {(line["payer"], line["detail"]): line["net_cents"] for line in after["per_payer"]}
    assert shares[("provider", str(till.provider))] == SENIOR_PROVIDER_SHARE
