"""Netting a provider's share of the discount cost against what we owe it, without a
database: the arithmetic of one netting, and a provider's account over claims, reversals
and payment runs in any order."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from services.claims import ledger
from services.claims.netting import NETTED, NETTING_UNDONE, netting_cents, netting_transfer

PROVIDER = uuid.UUID(int=7)
PAYABLE = ledger.payable_account("provider", PROVIDER)
RECEIVABLE = ledger.cost_account("provider", "poverty", PROVIDER)
cents = st.integers(-100_000, 100_000)


def test_the_provider_is_paid_the_discount_less_its_share() -> None:
    assert netting_cents(1500, 300) == 300  # paid 1200, owes nothing more
    assert netting_cents(200, 300) == 200  # paid nothing, still owes 100
    assert netting_cents(0, 300) == 0  # refund mode: nothing owed to it, the share stays
    assert netting_cents(-500, 300) == 0  # it owes on both accounts: nothing to set off
    assert netting_cents(750, -300) == -300  # a netted share reversed: owed to it again
    assert netting_cents(750, 0) == 0


@given(payable=cents, receivable=cents)
def test_netting_moves_the_position_never_changes_it(payable: int, receivable: int) -> None:
    moved = netting_cents(payable, receivable)
    after_payable, after_receivable = payable - moved, receivable - moved
    # What the provider is owed on balance (payable less receivable) is what it was.
    assert after_payable - after_receivable == payable - receivable
    # Afterwards the receivable holds only what the provider owes, and never while the
    # payable still holds something owed to it.
    assert after_receivable >= 0
    assert after_payable <= 0 or after_receivable == 0
    # Only what is owed on both sides is set off (or a credit on the receivable given back).
    assert 0 <= moved <= min(max(payable, 0), max(receivable, 0)) or moved == receivable < 0
    assert netting_cents(after_payable, after_receivable) == 0  # netted once is netted
    transfer = netting_transfer(PROVIDER, payable, receivable)
    if moved == 0:
        assert transfer is None
    else:
        assert transfer is not None and transfer.amount_cents == abs(moved) > 0
        expected = (
            (PAYABLE, RECEIVABLE, NETTED) if moved > 0 else (RECEIVABLE, PAYABLE, NETTING_UNDONE)
        )
        assert (transfer.debit_account, transfer.credit_account, transfer.code) == expected


# A provider's history: ("claim", discount, share) approves a claim (share <= discount);
# ("reverse", index, 0) reverses a claim if it stands; ("run", 0, 0) nets and pays.
claims = st.tuples(st.integers(1, 5_000), st.integers(0, 100)).map(
    lambda t: ("claim", t[0], t[0] * t[1] // 100)
)
reversals = st.integers(0, 20).map(lambda i: ("reverse", i, 0))
steps = st.lists(st.one_of(claims, reversals, st.just(("run", 0, 0))), max_size=40)


@given(history=steps)
def test_over_claims_reversals_and_runs_the_provider_is_paid_its_discounts_less_its_shares(
    history: list[tuple[str, int, int]],
) -> None:
    """Balances as the ledger keeps them (debits positive), moved by the transfers a claim,
    its reversal, the netting and a payment post."""
    balances = {PAYABLE: 0, RECEIVABLE: 0, "expense": 0, "paid": 0}
    standing: list[tuple[int, int] | None] = []

    def post(debit: str, credit: str, amount: int) -> None:
        balances[debit] += amount
        balances[credit] -= amount

    def run() -> None:
        transfer = netting_transfer(PROVIDER, -balances[PAYABLE], balances[RECEIVABLE])
        if transfer is not None:
            post(transfer.debit_account, transfer.credit_account, transfer.amount_cents)
        if -balances[PAYABLE] > 0:
            post(PAYABLE, "paid", -balances[PAYABLE])
        # After a run the provider is owed nothing on its payable, and its receivable holds
        # only what it owes.
        assert balances[PAYABLE] >= 0 and balances[RECEIVABLE] >= 0

    for kind, number, share in history:
        if kind == "claim":
            discount = number
            post("expense", PAYABLE, discount - share)
            if share:
                post(RECEIVABLE, PAYABLE, share)
            standing.append((discount, share))
        elif kind == "reverse":
            if number < len(standing) and (claim := standing[number]) is not None:
                discount, its_share = claim
                post(PAYABLE, "expense", discount - its_share)
                if its_share:
                    post(PAYABLE, RECEIVABLE, its_share)
                standing[number] = None
        else:
            run()
        assert sum(balances.values()) == 0
    run()
    net = sum(d - s for claim in standing if claim is not None for d, s in [claim])
    paid = -balances["paid"]
    # Paid the discounts less the shares of the claims that stand, but for what the
    # provider still owes (overpaid for claims reversed later, or shares past its payable).
    assert paid == net + balances[PAYABLE] + balances[RECEIVABLE]
    if all(claim is not None for claim in standing):
        assert paid == net
        assert balances[PAYABLE] == balances[RECEIVABLE] == 0
