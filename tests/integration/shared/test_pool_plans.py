"""Every service's pool plans each batch statement for the batch at hand.

PostgreSQL may switch a prepared statement to a generic plan after five executions; one
chosen during a quiet spell of one-row batches made the claims service's read of a batch's
facts four times as expensive at batches of 1,000 (the benchmark's latency phase, then its
throughput phase)."""

from __future__ import annotations

import uuid

import pytest

from shared.db import create_pool

pytestmark = pytest.mark.integration

_BATCH = "SELECT count(*) FROM plan_probe WHERE id = ANY($1::uuid[])"
# A statement whose generic plan is as cheap as its custom ones: PostgreSQL's default
# switches it to the generic plan after five executions.
_ONE = "SELECT count(*) FROM plan_probe WHERE id = $1"


async def test_small_batches_do_not_fix_the_plan_of_a_large_one(database: str) -> None:
    pool = await create_pool(database, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE plan_probe (id uuid PRIMARY KEY)")
            ids = [uuid.uuid4() for _ in range(2000)]
            await conn.copy_records_to_table("plan_probe", records=[(i,) for i in ids])
            await conn.execute("ANALYZE plan_probe")
            for single in ids[:20]:
                assert await conn.fetchval(_BATCH, [single]) == 1
                assert await conn.fetchval(_ONE, single) == 1
            assert await conn.fetchval(_BATCH, ids[:1000]) == 1000
            plans = {
                r["statement"]: (r["generic_plans"], r["custom_plans"])
                for r in await conn.fetch(
                    "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements"
                )
            }
            await conn.execute("DROP TABLE plan_probe")
    finally:
        await pool.close()
    assert plans[_BATCH] == (0, 21)
    assert plans[_ONE] == (0, 20)
