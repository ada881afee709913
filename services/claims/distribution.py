"""The distribution key (verdeelsleutel): who bears how much of one claim's discount cost.

Pure arithmetic in whole cents. The lines are applied in order, each taking at most what is
left; the municipality bears the rest, so the shares always add up to the claim exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from services.claims.policy import MUNICIPALITY, CostShare, ShareBasis
from shared.money import percent_of


@dataclass(frozen=True)
class PayerShare:
    payer: str  # "municipality", "provider" or "government:<name>"
    amount_cents: int


def split_cost(
    total_cents: int, key: Sequence[CostShare], *, resident: bool
) -> tuple[PayerShare, ...]:
    """The positive shares of `total_cents`, the municipality's last; they sum to the total."""
    remaining = total_cents
    taken: dict[str, int] = {}
    for line in key:
        if not line.applies(resident) or remaining <= 0:
            continue
        if line.basis is ShareBasis.FIXED:
            amount = line.amount_cents
        elif line.basis is ShareBasis.PERCENT_OF_TOTAL:
            amount = percent_of(total_cents, line.basis_points)
        else:
            amount = percent_of(remaining, line.basis_points)
        amount = min(amount, remaining)
        if amount > 0:
            taken[line.payer] = taken.get(line.payer, 0) + amount
            remaining -= amount
    shares = [PayerShare(payer, cents) for payer, cents in taken.items()]
    if remaining > 0:
        shares.append(PayerShare(MUNICIPALITY, remaining))
    return tuple(shares)
