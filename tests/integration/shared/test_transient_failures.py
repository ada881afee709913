"""A database that is briefly unable to work (a lock timeout, a full disk, a replica during a
failover) is waited for: the batch is applied once it recovers, and nothing in it is
dead-lettered as if the messages were at fault."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import pytest

from shared.consumer import BatchProcessor, DecodedBatch, Incoming
from shared.db import DbConnection
from shared.deadletter import DeadLetter, SourceRecord
from shared.envelope import new_envelope
from shared.events.base import EventPayload
from shared.topics import DEAD_LETTER_TOPIC
from tests.support.service_db import service_pool

pytestmark = pytest.mark.integration


class Nothing(EventPayload):
    pass


@pytest.mark.parametrize(
    "failure",
    [
        asyncpg.LockNotAvailableError("canceling statement due to lock timeout"),
        asyncpg.DiskFullError("could not extend file: No space left on device"),
        asyncpg.ReadOnlySQLTransactionError("cannot execute INSERT in a read-only transaction"),
    ],
    ids=type,
)
async def test_a_batch_waits_out_a_database_that_cannot_work_for_a_moment(
    database: str, tmp_path: Path, failure: Exception
) -> None:
    pool = await service_pool(
        database, tmp_path, "test-transient", "CREATE TABLE effects (event_id uuid NOT NULL);"
    )
    failures = [failure] * 4  # the batch, then each message alone, would all fail

    stalls = []  # what readiness would have said at each attempt

    async def handler(conn: DbConnection, batch: list[Incoming[Any]]) -> list[DeadLetter]:
        stalls.append(processor.stall())
        if failures:
            raise failures.pop()
        await conn.executemany(
            "INSERT INTO effects (event_id) VALUES ($1)", [(i.envelope.id,) for i in batch]
        )
        return []

    processor = BatchProcessor("test-transient", [], handler, pool, max_backoff_s=0.05)
    events = [
        Incoming(
            new_envelope(type="be.test.X", source="/t"),
            Nothing(),
            SourceRecord("test.x.v1", 0, offset, b"k", b"{}", []),
        )
        for offset in range(3)
    ]
    try:
        await processor.apply_batch(DecodedBatch([e.source for e in events], events))
        assert await pool.fetchval("SELECT count(*) FROM effects") == 3
        assert (
            await pool.fetchval("SELECT count(*) FROM outbox WHERE topic = $1", DEAD_LETTER_TOPIC)
            == 0
        )
        assert processor.dead_lettered == 0
        # Stalled from the first failure until the batch got through, with the error's type.
        assert stalls[0] is None
        assert {(s.consumer, s.error) for s in stalls[1:] if s} == {
            ("test-transient", type(failure).__name__)
        }
        assert all(s is not None for s in stalls[1:])
        assert processor.stall() is None
    finally:
        await pool.close()
