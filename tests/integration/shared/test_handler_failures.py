"""What a handler's failure means, on the real database: a value the driver can never send
is the message's fault (dead-lettered, not retried for ever); a missing table or permission
is not (the batch fails and is consumed again, nothing dead-lettered); and a dead letter's
detail never quotes the row PostgreSQL refused."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import BaseModel

from shared.consumer import BatchProcessor, DecodedBatch, Incoming
from shared.db import DbConnection
from shared.deadletter import DeadLetter, SourceRecord
from shared.envelope import new_envelope
from shared.events.base import EventPayload
from shared.outbox import headers_from_json
from shared.topics import DEAD_LETTER_TOPIC
from tests.support.service_db import service_pool

pytestmark = pytest.mark.integration


class Reading(EventPayload):
    value: int  # no upper bound: pydantic takes any integer, a bigint column does not
    email: str = "someone@example.org"


def _events(*values: int, email: str = "someone@example.org") -> list[Incoming[Any]]:
    return [
        Incoming(
            new_envelope(type="be.test.Reading", source="/t"),
            Reading(value=value, email=email),
            SourceRecord("test.readings.v1", 0, offset, b"k", f'{{"v": {value}}}'.encode(), []),
        )
        for offset, value in enumerate(values)
    ]


async def _letters(pool: asyncpg.Pool) -> list[dict[str, bytes]]:
    rows = await pool.fetch(
        "SELECT headers FROM outbox WHERE topic = $1 ORDER BY seq", DEAD_LETTER_TOPIC
    )
    return [dict(headers_from_json(r["headers"])) for r in rows]


async def _store_readings(conn: DbConnection, batch: list[Incoming[Any]]) -> list[DeadLetter]:
    await conn.executemany(
        "INSERT INTO readings (value, email) VALUES ($1, $2)",
        [(i.payload.value, i.payload.email) for i in batch],
    )
    return []


async def test_a_value_the_driver_cannot_send_is_dead_lettered_not_retried_for_ever(
    database: str, tmp_path: Path
) -> None:
    """asyncpg refuses 2**63 for a bigint before anything reaches the server. It says so
    with a PostgresError (DataError); were it an InterfaceError (as asyncpg's client-side
    DataError is), it would be taken for a lost connection and retried for ever, the
    consumer stalled behind one message."""
    pool = await service_pool(
        database,
        tmp_path,
        "test-encode",
        "CREATE TABLE readings (value bigint NOT NULL, email text NOT NULL);",
    )
    processor = BatchProcessor("test-encode", [], _store_readings, pool, max_backoff_s=0.05)
    events = _events(1, 2**63, 3)
    try:
        await asyncio.wait_for(
            processor.apply_batch(DecodedBatch([e.source for e in events], events)), 10
        )
        assert sorted(r["value"] for r in await pool.fetch("SELECT value FROM readings")) == [1, 3]
        [letter] = await _letters(pool)
        assert letter["dlq_reason"] == b"handler_error"
        assert letter["dlq_source_offset"] == b"1"
        assert processor.stall() is None
    finally:
        await pool.close()


async def test_a_missing_table_fails_the_batch_and_dead_letters_nothing(
    database: str, tmp_path: Path
) -> None:
    """Not the messages' fault (a migration an old replica does not know, a revoked
    permission): every message of the batch used to be dead-lettered as a handler error."""
    pool = await service_pool(
        database, tmp_path, "test-missing", "CREATE TABLE unrelated (id int);"
    )
    processor = BatchProcessor("test-missing", [], _store_readings, pool, max_backoff_s=0.05)
    events = _events(1, 2, 3)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            await processor.apply_batch(DecodedBatch([e.source for e in events], events))
        assert await _letters(pool) == []
        assert await pool.fetchval("SELECT count(*) FROM inbox") == 0
        assert processor.dead_lettered == 0
        # Put right (the migration, the grant), the batch consumed again is applied whole.
        await pool.execute("CREATE TABLE readings (value bigint NOT NULL, email text NOT NULL)")
        await processor.apply_batch(DecodedBatch([e.source for e in events], events))
        assert await pool.fetchval("SELECT count(*) FROM readings") == 3
        assert await _letters(pool) == []
    finally:
        await pool.close()


async def test_a_dead_letter_names_the_constraint_but_not_the_row_it_refused(
    database: str, tmp_path: Path
) -> None:
    """PostgreSQL's DETAIL of a check or not-null violation is the whole row ("Failing row
    contains (…)"): an address, a name. It went into the letter's `dlq_detail` header (kept
    on the dead-letter topic) and the log."""
    pool = await service_pool(
        database,
        tmp_path,
        "test-detail",
        "CREATE TABLE readings (value bigint NOT NULL CONSTRAINT positive CHECK (value > 0),"
        " email text NOT NULL);",
    )
    processor = BatchProcessor("test-detail", [], _store_readings, pool, max_backoff_s=0.05)
    events = _events(-1, email="jan.peeters@example.org")
    try:
        await processor.apply_batch(DecodedBatch([e.source for e in events], events))
        [letter] = await _letters(pool)
        detail = letter["dlq_detail"].decode()
        assert "CheckViolationError" in detail and "positive" in detail
        assert "jan.peeters" not in detail
    finally:
        await pool.close()


class Contact(BaseModel):
    email: int


async def test_a_dead_letter_does_not_quote_the_input_a_model_refused(
    database: str, tmp_path: Path
) -> None:
    """A pydantic error's text quotes the value it refused (`input_value=…`)."""
    pool = await service_pool(database, tmp_path, "test-model", "CREATE TABLE unused (id int);")

    async def handler(_conn: DbConnection, batch: list[Incoming[Any]]) -> list[DeadLetter]:
        for incoming in batch:
            Contact.model_validate({"email": incoming.payload.email})
        return []

    processor = BatchProcessor("test-model", [], handler, pool, max_backoff_s=0.05)
    events = _events(1, email="jan.peeters@example.org")
    try:
        await processor.apply_batch(DecodedBatch([e.source for e in events], events))
        [letter] = await _letters(pool)
        detail = letter["dlq_detail"].decode()
        assert "ValidationError" in detail and "email" in detail
        assert "jan.peeters" not in detail
    finally:
        await pool.close()
