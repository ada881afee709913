"""The ledger's guarantees hold in the database itself, whatever code posts to it:
transfers name existing accounts, nothing is changed or removed, a reversal mirrors the
transfer it reverses."""

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
PAYABLE = ledger.payable_account("card_holder", uuid.UUID(int=1))
INSERT = (
    "INSERT INTO transfers (transfer_id, debit_account, credit_account, amount_cents, code,"
    " claim_id, reverses) VALUES ($1, $2, $3, $4, 'test', $5, $6)"
)


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


def _transfer(amount_cents: int = 1500) -> ledger.Transfer:
    return ledger.Transfer(uuid7(), COST, PAYABLE, amount_cents, "test", claim_id=uuid7())


async def test_post_creates_the_accounts_it_names(conn: asyncpg.Connection) -> None:
    await ledger.post(conn, [_transfer(1500), _transfer(700)])
    assert await ledger.trial_balance(conn) == {COST: 2200, PAYABLE: -2200}


@pytest.mark.parametrize("side", ["debit", "credit"])
async def test_a_transfer_naming_an_unknown_account_is_refused(
    conn: asyncpg.Connection, side: str
) -> None:
    await ledger.post(conn, [_transfer()])
    unknown = "payable:holder:nobody"
    debit, credit = (unknown, PAYABLE) if side == "debit" else (COST, unknown)
    rows = [
        (uuid7(), COST, PAYABLE, 100, uuid7(), None),
        (uuid7(), debit, credit, 100, uuid7(), None),
    ]
    with pytest.raises(asyncpg.ForeignKeyViolationError, match=unknown):
        await conn.executemany(INSERT, rows)
    assert await conn.fetchval("SELECT count(*) FROM transfers") == 1  # the good row too


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE transfers SET amount_cents = 1",
        "DELETE FROM transfers",
        "TRUNCATE transfers",
        "UPDATE accounts SET account = account || ':x'",
        "DELETE FROM accounts",
        "TRUNCATE accounts CASCADE",
    ],
)
async def test_nothing_posted_can_be_changed_or_removed(
    conn: asyncpg.Connection, statement: str
) -> None:
    await ledger.post(conn, [_transfer()])
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await conn.execute(statement)
    assert await ledger.trial_balance(conn) == {COST: 1500, PAYABLE: -1500}


async def test_a_reversal_must_mirror_what_it_reverses(conn: asyncpg.Connection) -> None:
    original = _transfer()
    await ledger.post(conn, [original])
    claim = original.claim_id
    for debit, credit, amount in ((PAYABLE, COST, 1400), (COST, PAYABLE, 1500)):
        with pytest.raises(asyncpg.RaiseError, match="same amount"):
            await conn.execute(INSERT, uuid7(), debit, credit, amount, claim, original.transfer_id)
    await ledger.post(conn, [ledger.reversal_of(original, "test_reversed")])
    assert await ledger.trial_balance(conn) == {COST: 0, PAYABLE: 0}
