"""Posting to the municipal cost ledger. Account names say what they hold:

expense:discount:<target group>       the cost of discounts, per budget line
payable:holder:<id> / payable:provider:<id>   what we owe a card holder or provider
clearing:payments-in-transit          requested from finance, not yet settled
bank:municipality                     paid out
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from shared.db import DbConnection

IN_TRANSIT = "clearing:payments-in-transit"
BANK = "bank:municipality"


def discount_account(target_group: str) -> str:
    return f"expense:discount:{target_group}"


def payable_account(payee_kind: str, payee_id: uuid.UUID) -> str:
    kind = "holder" if payee_kind == "card_holder" else "provider"
    return f"payable:{kind}:{payee_id}"


def account_kind(account: str) -> str:
    return account.split(":", 1)[0]


@dataclass(frozen=True)
class Transfer:
    transfer_id: uuid.UUID
    debit_account: str
    credit_account: str
    amount_cents: int
    code: str
    claim_id: uuid.UUID | None = None
    payment_id: uuid.UUID | None = None
    reverses: uuid.UUID | None = None

    def __post_init__(self) -> None:
        if self.amount_cents <= 0:
            raise ValueError("a transfer moves a positive amount")
        if self.debit_account == self.credit_account:
            raise ValueError("a transfer needs two different accounts")


async def post(conn: DbConnection, transfers: Sequence[Transfer]) -> None:
    """Append transfers (and any accounts they name) in the caller's transaction."""
    if not transfers:
        return
    accounts = sorted({t.debit_account for t in transfers} | {t.credit_account for t in transfers})
    await conn.execute(
        "INSERT INTO accounts (account, kind) SELECT a, split_part(a, ':', 1) FROM unnest($1::text[]) a"
        " ON CONFLICT DO NOTHING",
        accounts,
    )
    await conn.execute(
        """
        INSERT INTO transfers (transfer_id, debit_account, credit_account, amount_cents, code,
                               claim_id, payment_id, reverses)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                             $6::uuid[], $7::uuid[], $8::uuid[])
        """,
        [t.transfer_id for t in transfers],
        [t.debit_account for t in transfers],
        [t.credit_account for t in transfers],
        [t.amount_cents for t in transfers],
        [t.code for t in transfers],
        [t.claim_id for t in transfers],
        [t.payment_id for t in transfers],
        [t.reverses for t in transfers],
    )


async def trial_balance(conn: DbConnection) -> dict[str, int]:
    """Balance per account, debits positive: the sum over all accounts is always zero."""
    rows = await conn.fetch(
        """
        SELECT account, sum(amount) AS balance FROM (
            SELECT debit_account AS account, amount_cents AS amount FROM transfers
            UNION ALL
            SELECT credit_account, -amount_cents FROM transfers
        ) entries GROUP BY account ORDER BY account
        """
    )
    return {r["account"]: int(r["balance"]) for r in rows}


async def totals(conn: DbConnection) -> tuple[int, int]:
    """(sum of debit balances, sum of credit balances) of the trial balance: equal exactly
    when the ledger balances."""
    balances = await trial_balance(conn)
    debit = sum(b for b in balances.values() if b > 0)
    credit = -sum(b for b in balances.values() if b < 0)
    return debit, credit
