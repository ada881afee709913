"""The inbox remembers an event by its id and its body: a message that reuses another's id
(a forgery, or a device with a broken id generator) no longer takes the genuine event's
place, and a redelivery of the same event is still applied once."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from shared.consumer import BatchProcessor, DecodedBatch, Incoming
from shared.db import DbConnection
from shared.deadletter import DeadLetter, SourceRecord
from shared.envelope import Envelope, new_envelope
from shared.events.base import EventPayload
from shared.inbox import inbox_key
from tests.support.service_db import service_pool

pytestmark = pytest.mark.integration


class Nothing(EventPayload):
    pass


def _delivery(envelope: Envelope, body: bytes, offset: int) -> Incoming[Nothing]:
    return Incoming(envelope, Nothing(), SourceRecord("test.x.v1", 0, offset, b"k", body, []))


async def test_an_id_reused_with_another_body_is_applied_a_redelivery_is_not(
    database: str, tmp_path: Path
) -> None:
    pool = await service_pool(
        database, tmp_path, "test-inbox", "CREATE TABLE effects (body bytea NOT NULL);"
    )

    async def handler(conn: DbConnection, batch: list[Incoming[Any]]) -> list[DeadLetter]:
        await conn.executemany(
            "INSERT INTO effects (body) VALUES ($1)", [(i.source.value,) for i in batch]
        )
        return []

    processor = BatchProcessor("test-inbox", [], handler, pool)
    genuine = new_envelope(type="be.test.X", source="/device")
    forged = Envelope(id=genuine.id, type="be.test.X", source="/elsewhere", correlation_id="x")
    first = [
        _delivery(forged, b'{"checkin":"forged"}', 0),  # comes first, with the genuine id
        _delivery(genuine, b'{"checkin":"genuine"}', 1),
        _delivery(genuine, b'{"checkin":"genuine"}', 2),  # delivered twice in one batch
    ]
    again = [_delivery(genuine, b'{"checkin":"genuine"}', 3)]  # and once more, later
    try:
        for events in (first, again):
            await processor.apply_batch(DecodedBatch([e.source for e in events], events))
        bodies = sorted(bytes(r["body"]) for r in await pool.fetch("SELECT body FROM effects"))
        assert bodies == [b'{"checkin":"forged"}', b'{"checkin":"genuine"}']
        assert processor.processed == 2
    finally:
        await pool.close()


def test_the_key_is_stable_and_bound_to_the_body() -> None:
    event_id = uuid.UUID("0190e1c2-7d3e-7abc-8def-0123456789ab")
    assert inbox_key(event_id, b"a") == inbox_key(event_id, b"a")
    assert inbox_key(event_id, b"a") != inbox_key(event_id, b"b")
    assert inbox_key(event_id, b"a") != inbox_key(uuid.uuid4(), b"a")
