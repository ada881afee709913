"""Netting a provider's share of the discount cost against what we owe it.

A provider that bears a share of a claim's cost (the distribution key) owes it to us: it
is booked on `receivable:provider:<id>`. In till-discount mode the same claim makes us owe
the provider the whole discount it gave at the till, on `payable:provider:<id>`. Before a
payment run pays a provider, the two are set off against each other, so the provider is
paid the discount less its own share and the receivable left is what it still owes (a
refund-mode provider is owed nothing: its receivable stays for the monthly report).

A claim reversed after its share was netted takes its share back from the receivable,
which then says we owe the provider that share: the next run moves it back onto the
payable, where it is paid (or makes up what the provider owes there). The provider's net
position (payable less receivable) is never changed by netting: only where it is booked.

Pure arithmetic in whole cents; the payment run posts the transfer.
"""

from __future__ import annotations

import uuid

from services.claims import ledger
from shared.ids import uuid7

NETTED = "provider_share_netted"
NETTING_UNDONE = "provider_share_netting_undone"


def netting_cents(payable_cents: int, receivable_cents: int) -> int:
    """What to move from the provider's payable (its credit balance: what we owe it) to
    its receivable (its debit balance: what it owes us). Positive: min(payable, receivable)
    when both are owed; negative: a receivable in credit (a netted share reversed) goes
    back to the payable whole; otherwise nothing."""
    if receivable_cents < 0:
        return receivable_cents
    return max(0, min(payable_cents, receivable_cents))


def netting_transfer(
    provider_id: uuid.UUID, payable_cents: int, receivable_cents: int
) -> ledger.Transfer | None:
    """The one balanced transfer that nets the provider's balances, if any is due."""
    amount = netting_cents(payable_cents, receivable_cents)
    if amount == 0:
        return None
    payable = ledger.payable_account("provider", provider_id)
    receivable = ledger.provider_receivable(provider_id)
    if amount > 0:
        return ledger.Transfer(uuid7(), payable, receivable, amount, NETTED)
    return ledger.Transfer(uuid7(), receivable, payable, -amount, NETTING_UNDONE)
