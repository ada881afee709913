"""An account statement on a real PostgreSQL: the running balance ends at the account's
balance in the trial balance, with or without a start."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.claims import ledger
from shared.ids import uuid7
from tests.integration.claims import scenario

pytestmark = pytest.mark.integration

COST = ledger.discount_account("poverty")


@pytest.fixture
async def conn(database: str) -> AsyncIterator[asyncpg.Connection]:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=1)
    await scenario.prepare(pool)
    connection = await asyncpg.connect(database)
    try:
        yield connection
    finally:
        await connection.close()
        await pool.close()


async def test_a_statement_from_the_start_closes_at_the_accounts_balance(
    conn: asyncpg.Connection,
) -> None:
    payable = ledger.payable_account("card_holder", uuid.uuid4())
    first = ledger.Transfer(uuid7(), COST, payable, 1500, "claim_approved", claim_id=uuid7())
    await ledger.post(conn, [first])
    await ledger.post(conn, [ledger.reversal_of(first, "claim_reversed")])
    await ledger.post(
        conn, [ledger.Transfer(uuid7(), COST, payable, 700, "claim_approved", claim_id=uuid7())]
    )
    statement = await ledger.statement(conn, COST)
    assert statement["opening_balance_cents"] == 0
    assert [e["balance_cents"] for e in statement["entries"]] == [1500, 0, 700]
    assert statement["closing_balance_cents"] == (await ledger.trial_balance(conn))[COST] == 700
