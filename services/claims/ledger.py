"""Posting to the municipal cost ledger. Account names say what they hold:

expense:discount:<target group>       the municipality's discount cost, per budget line
receivable:provider:<id>              a provider's share of the discount cost (distribution key),
                                      less what was netted against its payable (netting.py)
receivable:government:<name>          another government's share
payable:holder:<id> / payable:provider:<id>   what we owe a card holder or provider
clearing:payments-in-transit          requested from finance, not yet settled
bank:municipality                     paid out

Every transfer is one row with a debit and a credit account of the same amount, so no
transfer can be unbalanced; corrections are new transfers that mirror the one they reverse.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.db import DbConnection
from shared.ids import uuid7

IN_TRANSIT = "clearing:payments-in-transit"
BANK = "bank:municipality"


def discount_account(target_group: str) -> str:
    return f"expense:discount:{target_group}"


def payable_account(payee_kind: str, payee_id: uuid.UUID) -> str:
    kind = "holder" if payee_kind == "card_holder" else "provider"
    return f"payable:{kind}:{payee_id}"


def cost_account(payer: str, target_group: str, provider_id: uuid.UUID) -> str:
    """Where a payer's share of a claim's cost is booked (see the distribution key)."""
    if payer == "municipality":
        return discount_account(target_group)
    if payer == "provider":
        return provider_receivable(provider_id)
    return f"receivable:{payer}"  # government:<name>


def provider_receivable(provider_id: uuid.UUID) -> str:
    """What a provider owes us: its shares of the discount cost."""
    return f"receivable:provider:{provider_id}"


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


def reversal_of(original: Transfer, code: str) -> Transfer:
    """The correction of a transfer: same amount, accounts swapped, pointing at it."""
    return Transfer(
        uuid7(),
        original.credit_account,
        original.debit_account,
        original.amount_cents,
        code,
        claim_id=original.claim_id,
        payment_id=original.payment_id,
        reverses=original.transfer_id,
    )


def transfers_from_rows(rows: Iterable[Any]) -> list[Transfer]:
    return [
        Transfer(
            r["transfer_id"],
            r["debit_account"],
            r["credit_account"],
            int(r["amount_cents"]),
            r["code"],
            claim_id=r["claim_id"],
            payment_id=r["payment_id"],
            reverses=r["reverses"],
        )
        for r in rows
    ]


async def post(conn: DbConnection, transfers: Sequence[Transfer]) -> None:
    """Append transfers (and any accounts they name) in the caller's transaction."""
    if not transfers:
        return
    accounts = sorted({t.debit_account for t in transfers} | {t.credit_account for t in transfers})
    # One round trip: the accounts CTE runs first in the same statement, and the foreign
    # keys of the transfers are checked at its end, when the new accounts are visible.
    await conn.execute(
        """
        WITH new_accounts AS (
            INSERT INTO accounts (account, kind)
            SELECT a, split_part(a, ':', 1) FROM unnest($9::text[]) a
            ON CONFLICT DO NOTHING
        )
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
        accounts,
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


async def statement(
    conn: DbConnection,
    account: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """An account's entries in order with a running balance (debits positive), opening
    with the balance before `since` (nothing before the start: without `since` every entry
    is listed)."""
    opening = await conn.fetchval(
        """
        SELECT coalesce(sum(CASE WHEN debit_account = $1 THEN amount_cents ELSE -amount_cents END), 0)
        FROM transfers WHERE (debit_account = $1 OR credit_account = $1)
          AND $2::timestamptz IS NOT NULL AND created_at < $2
        """,
        account,
        since,
    )
    rows = await conn.fetch(
        """
        SELECT transfer_id, created_at, code, claim_id, payment_id, reverses,
               CASE WHEN debit_account = $1 THEN credit_account ELSE debit_account END AS counter_account,
               CASE WHEN debit_account = $1 THEN amount_cents ELSE -amount_cents END AS amount
        FROM transfers WHERE (debit_account = $1 OR credit_account = $1)
          AND ($2::timestamptz IS NULL OR created_at >= $2)
          AND ($3::timestamptz IS NULL OR created_at < $3)
        ORDER BY created_at, transfer_id
        """,
        account,
        since,
        until,
    )
    balance = int(opening)
    entries = []
    for r in rows:
        balance += int(r["amount"])
        entries.append(
            {
                "transfer_id": str(r["transfer_id"]),
                "at": r["created_at"].isoformat(),
                "code": r["code"],
                "counter_account": r["counter_account"],
                "debit_cents": max(int(r["amount"]), 0),
                "credit_cents": max(-int(r["amount"]), 0),
                "balance_cents": balance,
                "claim_id": str(r["claim_id"]) if r["claim_id"] else None,
                "payment_id": str(r["payment_id"]) if r["payment_id"] else None,
                "reverses": str(r["reverses"]) if r["reverses"] else None,
            }
        )
    return {
        "account": account,
        "opening_balance_cents": int(opening),
        "closing_balance_cents": balance,
        "entries": entries,
    }
