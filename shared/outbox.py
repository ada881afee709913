"""The outbox: events are written in the same transaction as the state change that caused
them, and a relay publishes them afterwards. A crash in between publishes late, never never."""

from __future__ import annotations

from base64 import b64decode, b64encode
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson

from shared.db import DbConnection
from shared.envelope import Envelope, Headers
from shared.events.base import EventPayload
from shared.topics import topic_for

NOTIFY_CHANNEL = "outbox"


def committed_range(payload: str) -> tuple[int, int] | None:
    """The `seq` range a commit's notification names (`"<lowest>-<highest>"`, written by
    `enqueue`), or None when it names none: the relay then looks at every row."""
    low, sep, high = payload.partition("-")
    if not (sep and low.isascii() and low.isdigit() and high.isascii() and high.isdigit()):
        return None
    first, last = int(low), int(high)
    return (first, last) if first <= last else None


@dataclass(frozen=True)
class OutgoingRecord:
    """A Kafka record ready to send; `event_id` deduplicates it in the outbox.

    `retain`: the id is derived from what the event is about (not drawn at random), so the
    same event can be enqueued again later; its row is kept for a while after publishing
    to recognise that. Rows with random ids are deleted once published."""

    event_id: str
    topic: str
    key: bytes
    headers: Headers
    payload: bytes
    retain: bool = False


def record_for(envelope: Envelope, payload: EventPayload) -> OutgoingRecord:
    topic = topic_for(payload)
    if envelope.type != topic.event_type:
        raise ValueError(f"envelope type {envelope.type} does not match topic {topic.name}")
    return OutgoingRecord(
        event_id=str(envelope.id),
        topic=topic.name,
        key=topic.key_of(payload),
        headers=envelope.headers(),
        payload=payload.model_dump_json().encode(),
    )


async def enqueue(conn: DbConnection, records: Sequence[OutgoingRecord]) -> None:
    """Add records to the outbox inside the caller's transaction (one round trip)."""
    if not records:
        return
    # The notification is delivered at commit: it wakes the relay at once instead of at its
    # next poll, and names the rows' seq range, so the relay reads just those rows (its
    # index of unpublished rows is mostly published, deleted rows until the next vacuum).
    # Same statement as the insert, so one round trip.
    await conn.execute(
        """
        WITH added AS (
            INSERT INTO outbox (event_id, topic, key, headers, payload, retain)
            SELECT * FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::jsonb[], $5::bytea[],
                                 $6::boolean[])
            ON CONFLICT (event_id) DO NOTHING
            RETURNING seq
        )
        SELECT pg_notify($7, (SELECT min(seq) || '-' || max(seq) FROM added))
        """,
        [r.event_id for r in records],
        [r.topic for r in records],
        [r.key for r in records],
        [headers_to_json(r.headers) for r in records],
        [r.payload for r in records],
        [r.retain for r in records],
        NOTIFY_CHANNEL,
    )


async def enqueue_events(
    conn: DbConnection, events: Iterable[tuple[Envelope, EventPayload]]
) -> None:
    await enqueue(conn, [record_for(env, payload) for env, payload in events])


def headers_to_json(headers: Headers) -> str:
    # Headers are stored as latin-1 text so arbitrary bytes survive the JSON round trip.
    # orjson: every event passes here once and through `headers_from_json` once (~4 µs
    # less per event than the stdlib's encoder and decoder together).
    text = orjson.dumps([[k, v.decode("latin-1")] for k, v in headers])
    if _NUL not in text:
        return text.decode()
    # jsonb refuses NUL (a poison record's header can hold any byte): such a pair is
    # stored as base64 of the key's UTF-8 and of the value, tagged.
    return orjson.dumps([_stored_pair(k, v) for k, v in headers]).decode()


# How orjson writes a NUL character (also found in an escaped backslash followed by
# "u0000": that only costs the slower encoding, which is right for every pair).
_NUL = b"\\u0000"
_BASE64 = "b64"


def _stored_pair(key: str, value: bytes) -> list[str]:
    if "\0" not in key and b"\0" not in value:
        return [key, value.decode("latin-1")]
    return [b64encode(key.encode()).decode(), b64encode(value).decode(), _BASE64]


def headers_from_json(raw: str | list[list[str]]) -> Headers:
    pairs = orjson.loads(raw) if isinstance(raw, str) else raw
    return [
        (p[0], p[1].encode("latin-1"))
        if len(p) == 2
        else (b64decode(p[0]).decode(), b64decode(p[1]))
        for p in pairs
    ]
