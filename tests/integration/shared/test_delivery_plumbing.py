"""Inbox, outbox and dead-lettering on the real broker and database: duplicates change
nothing, poison lands in the dead-letter topic with its reason, good messages still flow."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import Field

from shared.consumer import BatchProcessor, Incoming
from shared.db import DbConnection
from shared.deadletter import DeadLetter
from shared.envelope import new_envelope
from shared.events.base import EventPayload
from shared.kafka import ensure_topics
from shared.outbox import OutgoingRecord, enqueue
from shared.runtime import ServiceRuntime
from shared.topics import DEAD_LETTER_TOPIC, Topic
from tests.support.components import Infra
from tests.support.kafka import header, produce_raw, produce_raw_batch, read_topic
from vtp.operations.deadletters import Letter, plan_redrive
from vtp.operations.deadletters_cli import read_dead_letters, send_back

pytestmark = pytest.mark.integration


class WidgetMade(EventPayload):
    widget_id: uuid.UUID
    size: int = Field(ge=0)


def _topic(suffix: str) -> Topic:
    return Topic(
        f"test.widget-made-{suffix}.v1",
        "be.test.WidgetMade",
        WidgetMade,
        lambda p: str(p.widget_id),
        partitions=4,
    )


async def _made(conn: DbConnection, batch: list[Incoming[Any]], out_topic: str) -> list[DeadLetter]:
    await conn.executemany(
        "INSERT INTO effects (event_id, widget_id) VALUES ($1, $2)",
        [(i.envelope.id, i.payload.widget_id) for i in batch],
    )
    await enqueue(
        conn,
        [
            OutgoingRecord(
                str(uuid.uuid4()),
                out_topic,
                str(i.payload.widget_id).encode(),
                i.envelope.caused(type="be.test.WidgetCounted", source="/test").headers(),
                json.dumps({"widget_id": str(i.payload.widget_id)}).encode(),
            )
            for i in batch
        ],
    )
    return []


@pytest.fixture
async def running_consumer(infra: Infra, database: str, tmp_path: Path) -> Any:
    suffix = uuid.uuid4().hex[:8]
    topic, out_topic = _topic(suffix), f"test.widget-counted-{suffix}.v1"
    await ensure_topics(
        infra.bootstrap_servers, [topic.name, out_topic, DEAD_LETTER_TOPIC], partitions=4
    )
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    # No unique key on purpose: only the inbox stands between a redelivery and a second row.
    (migrations / "0001_effects.sql").write_text(
        "CREATE TABLE effects (event_id uuid NOT NULL, widget_id uuid NOT NULL);"
    )
    runtime = ServiceRuntime(
        name=f"test-{suffix}",
        bootstrap_servers=infra.bootstrap_servers,
        database_url=database,
        migrations=migrations,
    )
    pool = await runtime.open_database()

    faulty: set[uuid.UUID] = set()  # widgets the handler fails on, as a bug would

    async def handler(conn: DbConnection, batch: list[Incoming[Any]]) -> list[DeadLetter]:
        if any(i.payload.widget_id in faulty for i in batch):
            raise RuntimeError("a fault in the handler")
        return await _made(conn, batch, out_topic)

    prepared: list[uuid.UUID] = []  # the envelope ids prepare() was given, decoded
    runtime.consume(
        BatchProcessor(
            f"test-{suffix}",
            [topic],
            handler,
            pool,
            prepare=lambda batch: prepared.extend(i.envelope.id for i in batch),
        ),
        group_id=f"g-{suffix}",
    )
    task = asyncio.create_task(runtime.run())
    try:
        yield runtime, topic, out_topic, pool, prepared, faulty
    finally:
        runtime.stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)


def _record(topic: str, payload: bytes, *, retain: bool = False) -> OutgoingRecord:
    """An outbox row of a test event, with a fresh id."""
    return OutgoingRecord(
        str(uuid.uuid4()),
        topic,
        b"k",
        new_envelope(type="be.test.X", source="/t").headers(),
        payload,
        retain=retain,
    )


async def _wait_for(pool: asyncpg.Pool, query: str, expected: int, timeout_s: float = 60) -> int:
    deadline = asyncio.get_running_loop().time() + timeout_s
    value = -1
    while asyncio.get_running_loop().time() < deadline:
        value = int(await pool.fetchval(query))
        if value >= expected:
            return value
        await asyncio.sleep(0.1)
    return value


async def test_duplicates_are_applied_once_and_poison_is_dead_lettered(
    infra: Infra, running_consumer: Any
) -> None:
    _, topic, out_topic, pool, prepared, _ = running_consumer
    widgets = [WidgetMade(widget_id=uuid.uuid4(), size=n) for n in range(20)]
    envelopes = [new_envelope(type=topic.event_type, source="/test") for _ in widgets]
    bootstrap = infra.bootstrap_servers
    for index, (envelope, widget) in enumerate(zip(envelopes, widgets, strict=True)):
        body = widget.model_dump_json().encode()
        await produce_raw(
            bootstrap, topic.name, body, key=topic.key_of(widget), headers=envelope.headers()
        )
        if index % 4 == 0:  # the same message delivered again
            await produce_raw(
                bootstrap, topic.name, body, key=topic.key_of(widget), headers=envelope.headers()
            )
        if index == 5:  # poison in the middle of the stream
            await produce_raw(
                bootstrap, topic.name, b"{not json", key=b"k", headers=envelope.headers()
            )
            await produce_raw(
                bootstrap,
                topic.name,
                b'{"widget_id": "nope", "size": -1}',
                key=b"k",
                headers=new_envelope(type=topic.event_type, source="/t").headers(),
            )
            await produce_raw(
                bootstrap,
                topic.name,
                body,
                headers=new_envelope(type="be.test.WidgetMade.v9", source="/t").headers(),
            )
            await produce_raw(
                bootstrap,
                topic.name,
                b"x" * (70 * 1024),
                headers=new_envelope(type=topic.event_type, source="/t").headers(),
            )

    applied = await _wait_for(pool, "SELECT count(*) FROM effects", len(widgets))
    await asyncio.sleep(1.0)  # give a wrongly applied duplicate the time to show up
    assert int(await pool.fetchval("SELECT count(*) FROM effects")) == applied == len(widgets)
    assert int(await pool.fetchval("SELECT count(DISTINCT event_id) FROM effects")) == len(widgets)
    # Every good message was offered to prepare(), decoded; no poison ever was.
    assert set(prepared) == {e.id for e in envelopes}

    dead = [
        r
        for r in await read_topic(bootstrap, DEAD_LETTER_TOPIC)
        if header(r, "dlq_source_topic") == topic.name
    ]
    reasons = sorted(header(r, "dlq_reason") or "" for r in dead)
    assert reasons == ["malformed_json", "oversized", "schema_violation", "unknown_version"]
    malformed = next(r for r in dead if header(r, "dlq_reason") == "malformed_json")
    assert malformed.value == b"{not json"  # the original bytes, untouched
    assert "widget_id" in (
        header(next(r for r in dead if header(r, "dlq_reason") == "schema_violation"), "dlq_detail")
        or ""
    )

    published = await read_topic(bootstrap, out_topic)
    assert sorted(json.loads(r.value)["widget_id"] for r in published) == sorted(
        str(w.widget_id) for w in widgets
    )
    correlations = {header(r, "correlation_id") for r in published}
    assert correlations == {str(e.id) for e in envelopes}


async def test_the_relay_publishes_rows_committed_while_the_broker_is_paused(
    infra: Infra, running_consumer: Any
) -> None:
    _, _, out_topic, pool, _, _ = running_consumer
    if infra.broker is None:
        pytest.skip("pausing needs the embedded broker process")
    infra.broker.pause()
    try:
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(
                conn,
                [_record(out_topic, b'{"during": "pause"}')],
            )
        await asyncio.sleep(2)
    finally:
        infra.broker.resume()
    # Published, then deleted: the outbox empties once the broker is back.
    assert await _wait_for(pool, "SELECT (count(*) = 0)::int FROM outbox", 1) == 1
    values = [r.value for r in await read_topic(infra.bootstrap_servers, out_topic)]
    assert values.count(b'{"during": "pause"}') == 1


async def test_a_derived_event_id_is_remembered_after_publishing(
    infra: Infra, running_consumer: Any
) -> None:
    """A dead letter's id comes from the poison message's position: replayed after a crash,
    the same letter is enqueued again and must not be published twice. Its row stays
    (marked published); an ordinary event's row is deleted once published."""
    _, _, out_topic, pool, _, _ = running_consumer
    derived = _record(out_topic, b'{"letter": 1}', retain=True)
    ordinary = _record(out_topic, b'{"ordinary": 1}')
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, [derived, ordinary])
    marked = "SELECT count(*) FROM outbox WHERE retain AND published_at IS NOT NULL"
    assert await _wait_for(pool, marked, 1) == 1
    assert await _wait_for(pool, "SELECT (count(*) = 1)::int FROM outbox", 1) == 1
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, [derived])  # the replay
    await asyncio.sleep(1.5)  # the relay's wake-up and a pass, had the row been new
    values = [r.value for r in await read_topic(infra.bootstrap_servers, out_topic)]
    assert values.count(b'{"letter": 1}') == 1
    assert values.count(b'{"ordinary": 1}') == 1


async def test_poison_the_database_or_the_json_parser_cannot_take_is_dead_lettered(
    infra: Infra, running_consumer: Any
) -> None:
    """A body nested too deeply for the JSON parser once failed its whole batch, silently
    skipped; a NUL byte in a copied header (jsonb refuses it) failed the batch for ever."""
    _, topic, _, pool, _, _ = running_consumer
    bootstrap = infra.bootstrap_servers
    widgets = [WidgetMade(widget_id=uuid.uuid4(), size=n) for n in range(6)]

    def headers() -> list[tuple[str, bytes]]:
        return new_envelope(type=topic.event_type, source="/test").headers()

    async def produce_widget(widget: WidgetMade) -> None:
        body = widget.model_dump_json().encode()
        await produce_raw(bootstrap, topic.name, body, key=topic.key_of(widget), headers=headers())

    for widget in widgets[:3]:
        await produce_widget(widget)
    await produce_raw(bootstrap, topic.name, b"[" * 1000, key=b"k", headers=headers())
    nul_header = ("x-trace", b"a\x00b")
    await produce_raw(
        bootstrap, topic.name, b"{not json", key=b"k", headers=[*headers(), nul_header]
    )
    nul_correlation = new_envelope(type=topic.event_type, source="/test", correlation_id="c\0d")
    await produce_raw(
        bootstrap,
        topic.name,
        widgets[0].model_dump_json().encode(),
        key=b"k",
        headers=nul_correlation.headers(),
    )
    for widget in widgets[3:]:
        await produce_widget(widget)

    assert await _wait_for(pool, "SELECT count(*) FROM effects", len(widgets)) == len(widgets)
    applied = {r["widget_id"] for r in await pool.fetch("SELECT widget_id FROM effects")}
    assert applied == {w.widget_id for w in widgets}
    letters = "SELECT (count(*) = 0)::int FROM outbox WHERE published_at IS NULL"
    assert await _wait_for(pool, letters, 1) == 1
    dead = [
        r
        for r in await read_topic(bootstrap, DEAD_LETTER_TOPIC)
        if header(r, "dlq_source_topic") == topic.name
    ]
    by_value = {bytes(r.value): r for r in dead}
    assert sorted(header(r, "dlq_reason") or "" for r in dead) == [
        "invalid_envelope",
        "malformed_json",
        "malformed_json",
    ]
    assert "nested too deeply" in (header(by_value[b"[" * 1000], "dlq_detail") or "")
    assert nul_header in [(k, bytes(v)) for k, v in by_value[b"{not json"].headers]
    assert header(by_value[widgets[0].model_dump_json().encode()], "correlation_id") == "c\0d"


async def test_a_record_whose_header_key_is_not_utf8_is_dead_lettered_and_the_rest_applied(
    infra: Infra, running_consumer: Any
) -> None:
    """Such a key once stopped the consumer for good (shared/fetch_guard.py). Its record is
    a well-formed event otherwise: refused all the same, as nothing could send it on."""
    _, topic, _, pool, _, _ = running_consumer
    bootstrap = infra.bootstrap_servers
    widgets = [WidgetMade(widget_id=uuid.uuid4(), size=n) for n in range(4)]

    def record(widget: WidgetMade, *extra: tuple[bytes, bytes]) -> tuple[bytes, list[Any]]:
        envelope = new_envelope(type=topic.event_type, source="/test").headers()
        return widget.model_dump_json().encode(), [(k.encode(), v) for k, v in envelope] + [*extra]

    poison = record(widgets[1], (b"x-\xff\xfe", b"v"))
    await produce_raw_batch(bootstrap, topic.name, [record(widgets[0]), poison, record(widgets[2])])
    await produce_raw(
        bootstrap,
        topic.name,
        widgets[3].model_dump_json().encode(),
        key=b"k",
        headers=new_envelope(type=topic.event_type, source="/test").headers(),
    )

    expected = {widgets[0].widget_id, widgets[2].widget_id, widgets[3].widget_id}
    assert await _wait_for(pool, "SELECT count(*) FROM effects", 3) == 3
    applied = {r["widget_id"] for r in await pool.fetch("SELECT widget_id FROM effects")}
    assert applied == expected
    letters = "SELECT (count(*) = 0)::int FROM outbox WHERE published_at IS NULL"
    assert await _wait_for(pool, letters, 1) == 1
    [dead] = [
        r
        for r in await read_topic(bootstrap, DEAD_LETTER_TOPIC)
        if header(r, "dlq_source_topic") == topic.name
    ]
    assert bytes(dead.value) == poison[0]
    assert header(dead, "dlq_reason") == "invalid_envelope"
    assert header(dead, "dlq_detail") == "header key b'x-\\xff\\xfe' is not UTF-8"
    assert ("x-\\xff\\xfe", b"v") in [(k, bytes(v)) for k, v in dead.headers]


async def test_a_message_dead_lettered_by_a_fault_since_fixed_is_applied_once_sent_back(
    infra: Infra, running_consumer: Any
) -> None:
    _, topic, _, pool, _, faulty = running_consumer
    widget = WidgetMade(widget_id=uuid.uuid4(), size=3)
    envelope = new_envelope(type=topic.event_type, source="/test")
    faulty.add(widget.widget_id)
    await produce_raw(
        infra.bootstrap_servers,
        topic.name,
        widget.model_dump_json().encode(),
        key=topic.key_of(widget),
        headers=envelope.headers(),
    )
    deadline = asyncio.get_running_loop().time() + 60
    letters: list[Letter] = []
    while not letters:
        assert asyncio.get_running_loop().time() < deadline, "never dead-lettered"
        letters = [
            letter
            for letter in await read_dead_letters(infra.bootstrap_servers)
            if letter.source_topic == topic.name
        ]
    assert [letter.reason for letter in letters] == ["handler_error"]
    assert await pool.fetchval("SELECT count(*) FROM effects") == 0

    faulty.clear()  # the fault is fixed and deployed; the operator sends the message back
    plan = plan_redrive(letters)
    await send_back(infra.bootstrap_servers, plan.records)
    await send_back(infra.bootstrap_servers, plan.records)  # twice, by mistake
    assert await _wait_for(pool, "SELECT count(*) FROM effects", 1) == 1
    await asyncio.sleep(1.0)  # give a second application the time to show up
    rows = await pool.fetch("SELECT event_id, widget_id FROM effects")
    assert [(r["event_id"], r["widget_id"]) for r in rows] == [(envelope.id, widget.widget_id)]
