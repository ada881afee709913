"""The outbox relay on the real broker and database: a commit's notification names its
rows, a pass reads just those, and a sweep still finds rows nobody was told about.
Retained rows are forgotten after their retention, without holding back publishing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from structlog.testing import capture_logs

from shared.consumer import Stall
from shared.db import SHARED_MIGRATIONS, create_pool, migrate
from shared.envelope import new_envelope
from shared.http import health_router, metrics_router
from shared.kafka import KafkaSender, RecordsRefused, ensure_topics, make_producer
from shared.metrics import ServiceMetrics
from shared.outbox import NOTIFY_CHANNEL, OutgoingRecord, committed_range, enqueue
from shared.relay import FORGET_PUBLISHED, OutboxRelay
from tests.support.components import Infra
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration


def _record(topic: str, n: int, padding: int = 0) -> OutgoingRecord:
    return OutgoingRecord(
        str(uuid.uuid4()),
        topic,
        b"k",
        new_envelope(type="be.test.X", source="/t").headers(),
        f'{{"n": {n}, "pad": "{"x" * padding}"}}'.encode() if padding else f'{{"n": {n}}}'.encode(),
    )


async def _stray(pool: asyncpg.Pool, record: OutgoingRecord) -> None:
    """A row committed without a notification (as if the relay was not listening)."""
    await pool.execute(
        "INSERT INTO outbox (event_id, topic, key, headers, payload) VALUES ($1, $2, $3, '[]', $4)",
        uuid.UUID(record.event_id),
        record.topic,
        record.key,
        record.payload,
    )


# The relay's records in these tests are far smaller; a record this large is refused.
RECORD_LIMIT = 10_000


@pytest.fixture
async def producer(infra: Infra) -> AsyncIterator[AIOKafkaProducer]:
    producer = make_producer(infra.bootstrap_servers, client_id="test-relay")
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@pytest.fixture
async def outbox(
    infra: Infra, database: str, producer: AIOKafkaProducer
) -> AsyncIterator[tuple[asyncpg.Pool, str, KafkaSender]]:
    topic = f"test.relay-{uuid.uuid4().hex[:8]}.v1"
    await ensure_topics(infra.bootstrap_servers, [topic], partitions=2)
    pool = await create_pool(database)
    async with pool.acquire() as conn:
        await migrate(conn, SHARED_MIGRATIONS)
    try:
        yield pool, topic, KafkaSender(producer, max_record_bytes=RECORD_LIMIT)
    finally:
        await pool.close()


async def _published(infra: Infra, topic: str) -> list[bytes]:
    return sorted(r.value for r in await read_topic(infra.bootstrap_servers, topic, idle_s=1))


async def test_a_commit_names_its_rows_and_a_pass_reads_only_those(
    infra: Infra, outbox: tuple[asyncpg.Pool, str, KafkaSender]
) -> None:
    pool, topic, sender = outbox
    await _stray(pool, _record(topic, 0))
    heard: list[str] = []

    def hear(*args: object) -> None:
        heard.append(str(args[3]))

    listener = await pool.acquire()
    await listener.add_listener(NOTIFY_CHANNEL, hear)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, [_record(topic, n) for n in (1, 2, 3)])
        for _ in range(50):
            if heard:
                break
            await asyncio.sleep(0.05)
    finally:
        await listener.remove_listener(NOTIFY_CHANNEL, hear)
        await pool.release(listener)
    seqs = await pool.fetch("SELECT seq FROM outbox WHERE payload <> '{\"n\": 0}' ORDER BY seq")
    assert [committed_range(p) for p in heard] == [(seqs[0]["seq"], seqs[-1]["seq"])]

    relay = OutboxRelay(pool, sender)
    [seqs_named] = [committed_range(p) for p in heard]
    assert seqs_named is not None
    assert await relay.publish_pending(seqs_named) == 3
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 1  # the stray is left
    assert await relay.publish_pending(seqs_named) == 0
    assert await relay.publish_pending() == 1  # a sweep finds it
    assert await _published(infra, topic) == [f'{{"n": {n}}}'.encode() for n in range(4)]


async def test_the_running_relay_publishes_what_it_is_told_of_and_sweeps_up_the_rest(
    infra: Infra, outbox: tuple[asyncpg.Pool, str, KafkaSender]
) -> None:
    pool, topic, sender = outbox
    # Polls so rarely that only notifications and the sweep can publish within the test.
    relay = OutboxRelay(pool, sender, poll_interval_s=600, sweep_interval_s=2)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.sleep(0.5)  # the first pass (a sweep) is done
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, [_record(topic, n) for n in range(5)])
        await _drained(pool, within_s=1.5)  # well before the next sweep is due
        await _stray(pool, _record(topic, 5))
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, [_record(topic, 6)])  # told of; its pass skips the stray
        await asyncio.sleep(0.3)
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 1
        await _drained(pool, within_s=4)  # the sweep
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
    assert await _published(infra, topic) == [f'{{"n": {n}}}'.encode() for n in range(7)]


async def _retained(pool: asyncpg.Pool, topic: str, published_ago: str | None) -> uuid.UUID:
    """A retained row (a dead letter's derived id), published that long ago, or not yet."""
    event_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO outbox (event_id, topic, key, headers, payload, retain, published_at)"
        " VALUES ($1, $2, 'k', '[]', '{}', true, now() - $3::text::interval)",
        event_id,
        topic,
        published_ago,
    )
    return event_id


async def _left(pool: asyncpg.Pool) -> set[uuid.UUID]:
    return {r["event_id"] for r in await pool.fetch("SELECT event_id FROM outbox")}


async def test_retained_rows_are_forgotten_once_their_retention_is_over(
    outbox: tuple[asyncpg.Pool, str, KafkaSender],
) -> None:
    pool, topic, sender = outbox
    old = await _retained(pool, topic, "2 hours")
    recent = await _retained(pool, topic, "10 minutes")
    relay = OutboxRelay(pool, sender, retention=timedelta(hours=1))
    assert await relay.forget_published() == 1
    assert old not in await _left(pool)
    assert await _left(pool) == {recent}
    assert await relay.forget_published() == 0
    await pool.execute("DELETE FROM outbox")  # the fixture expects an empty outbox


async def test_forgetting_reads_only_the_published_rows(
    outbox: tuple[asyncpg.Pool, str, KafkaSender],
) -> None:
    """Behind a busy hour the outbox holds many rows (most deleted, not yet vacuumed); the
    clean-up must not read them all while the relay waits."""
    pool, _, _ = outbox
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(
            r[0] for r in await conn.fetch(f"EXPLAIN {FORGET_PUBLISHED}", timedelta(hours=1))
        )
    assert "outbox_published" in plan, plan


async def test_the_running_relay_forgets_on_its_interval_and_keeps_publishing(
    infra: Infra, outbox: tuple[asyncpg.Pool, str, KafkaSender]
) -> None:
    pool, topic, sender = outbox
    old = await _retained(pool, topic, "2 hours")
    relay = OutboxRelay(pool, sender, cleanup_interval_s=0.5, retention=timedelta(hours=1))
    stop = asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(relay.run(stop))
        try:
            async with pool.acquire() as conn, conn.transaction():
                await enqueue(conn, [_record(topic, n) for n in range(3)])
            await _drained(pool, within_s=4)  # published, and the old row forgotten
            assert old not in await _left(pool)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
    forgotten = [line for line in logs if line["event"] == "retained outbox rows forgotten"]
    assert [line["rows"] for line in forgotten] == [1]  # told once, and only when it did
    assert await _published(infra, topic) == [f'{{"n": {n}}}'.encode() for n in range(3)]


async def test_a_failing_clean_up_is_reported_and_holds_back_no_pass(
    infra: Infra, outbox: tuple[asyncpg.Pool, str, KafkaSender]
) -> None:
    pool, topic, sender = outbox

    class FailingCleanUp(OutboxRelay):
        async def forget_published(self) -> int:
            raise RuntimeError("the clean-up is refused")

    relay = FailingCleanUp(pool, sender, cleanup_interval_s=0.0)  # tried after every pass
    stop = asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(relay.run(stop))
        try:
            for n in range(3):
                async with pool.acquire() as conn, conn.transaction():
                    await enqueue(conn, [_record(topic, n)])
                await _drained(pool, within_s=1.5)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
    events = [line["event"] for line in logs]
    assert "outbox cleanup failed" in events
    assert "outbox relay retrying" not in events  # publishing never backed off
    assert await _published(infra, topic) == [f'{{"n": {n}}}'.encode() for n in range(3)]


async def _drained(pool: asyncpg.Pool, within_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + within_s
    while await pool.fetchval("SELECT count(*) FROM outbox"):
        assert asyncio.get_running_loop().time() < deadline, "the outbox was not emptied"
        await asyncio.sleep(0.05)


def _values(n: range) -> list[bytes]:
    return [f'{{"n": {i}}}'.encode() for i in n]


async def _parked(pool: asyncpg.Pool) -> list[tuple[int, str]]:
    rows = await pool.fetch(
        "SELECT payload, parked_reason FROM outbox WHERE parked_at IS NOT NULL ORDER BY seq"
    )
    return [(json.loads(r["payload"])["n"], r["parked_reason"]) for r in rows]


async def test_a_record_the_broker_will_never_take_is_parked_and_the_rest_go_out(
    infra: Infra, outbox: tuple[asyncpg.Pool, str, KafkaSender], producer: AIOKafkaProducer
) -> None:
    pool, topic, sender = outbox
    # Polls so rarely that only notifications and its own wake-up publish the rest.
    metrics = ServiceMetrics()
    relay = OutboxRelay(
        pool, sender, poll_interval_s=600, sweep_interval_s=600, metrics=metrics.relay
    )
    stop = asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(relay.run(stop))
        try:
            async with pool.acquire() as conn, conn.transaction():
                records = [
                    _record(topic, n, padding=RECORD_LIMIT if n == 2 else 0) for n in range(5)
                ]
                await enqueue(conn, records)
            deadline = asyncio.get_running_loop().time() + 5
            while await pool.fetchval("SELECT count(*) FROM outbox WHERE parked_at IS NULL"):
                assert asyncio.get_running_loop().time() < deadline, "the relay stopped"
                await asyncio.sleep(0.05)
            async with pool.acquire() as conn, conn.transaction():
                await enqueue(conn, [_record(topic, 5)])  # and it goes on publishing
            await asyncio.sleep(0.5)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
    # Published once each (nothing of the refused pass had gone out), in their order.
    got = [r.value for r in await read_topic(infra.bootstrap_servers, topic, idle_s=1)]
    assert got == _values(range(6))[:2] + _values(range(6))[3:]
    [(n, reason)] = await _parked(pool)
    assert n == 2 and reason.endswith(f"more than the {RECORD_LIMIT} a record may have")
    [told] = [line for line in logs if line["event"] == "outbox record parked"]
    assert told["log_level"] == "error"
    assert (told["event_id"], told["topic"]) == (records[2].event_id, topic)
    assert "outbox relay retrying" not in [line["event"] for line in logs]

    # The operator sees it in the readiness probe, which still says ready...
    assert await _ready(pool) == {
        "status": "ready",
        "outbox_pending": 0,
        "outbox_oldest_pending_s": None,
        "outbox_parked": 1,
    }
    # ...and in the metrics: counted by the relay, and read by the scrape.
    app = FastAPI()
    app.include_router(metrics_router(metrics, lambda: pool))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://service"
    ) as client:
        scraped = (await client.get("/metrics")).text
    assert "vtp_outbox_published_total 5.0" in scraped
    assert "vtp_outbox_records_parked_total 1.0" in scraped
    assert "vtp_outbox_parked_rows 1.0" in scraped
    assert "vtp_outbox_pending_rows 0.0" in scraped
    assert "vtp_outbox_relay_failures_total 0.0" in scraped
    # ...and, the cause removed (here: a sender that takes larger records), releases it.
    await pool.execute("UPDATE outbox SET parked_at = NULL WHERE parked_at IS NOT NULL")
    assert await OutboxRelay(pool, KafkaSender(producer)).publish_pending() == 1
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def _ready(pool: asyncpg.Pool, stalls: list[Stall] | None = None) -> Any:
    app = FastAPI()
    app.include_router(
        health_router(lambda: pool, stalls=None if stalls is None else lambda: stalls)
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://service"
    ) as client:
        ready = await client.get("/health/ready")
    assert ready.status_code == 200, ready.text
    return ready.json()


async def test_the_readiness_probe_shows_what_waits_to_go_out_and_since_when(
    outbox: tuple[asyncpg.Pool, str, KafkaSender],
) -> None:
    pool, topic, sender = outbox
    async with pool.acquire() as conn, conn.transaction():  # a broker away: nothing relayed
        await enqueue(conn, [_record(topic, n) for n in range(3)])
    await pool.execute("UPDATE outbox SET created_at = now() - interval '90 seconds'")
    waiting = await _ready(pool)
    assert (waiting["outbox_pending"], waiting["outbox_parked"]) == (3, 0)
    assert 90 <= waiting["outbox_oldest_pending_s"] < 150
    assert await OutboxRelay(pool, sender).publish_pending() == 3  # the broker is back
    assert await _ready(pool) == {
        "status": "ready",
        "outbox_pending": 0,
        "outbox_oldest_pending_s": None,
        "outbox_parked": 0,
    }


class RefusesBatchesHolding:
    """The real broker, behind what a stricter broker answers for a record batch holding
    a record it will never take: the whole batch is refused, not just that record."""

    def __init__(self, sender: KafkaSender, poison: str) -> None:
        self._sender, self._poison = sender, poison

    async def send_all(self, records: Sequence[OutgoingRecord]) -> None:
        if any(r.event_id == self._poison for r in records):
            raise RecordsRefused(records, "the broker refused it: MessageSizeTooLargeError")
        await self._sender.send_all(records)


async def test_a_batch_refused_whole_is_offered_record_by_record_and_only_the_culprit_parked(
    infra: Infra, outbox: tuple[asyncpg.Pool, str, KafkaSender]
) -> None:
    pool, topic, sender = outbox
    records = [_record(topic, n) for n in range(4)]
    relay = OutboxRelay(pool, RefusesBatchesHolding(sender, poison=records[1].event_id))
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, records)
    assert await relay.publish_pending() == 3  # each alone: three taken, one refused
    assert await relay.publish_pending() == 0  # and the parked one is not offered again
    assert await _parked(pool) == [(1, "the broker refused it: MessageSizeTooLargeError")]
    got = [r.value for r in await read_topic(infra.bootstrap_servers, topic, idle_s=1)]
    assert got == [_values(range(4))[n] for n in (0, 2, 3)]


async def test_stopping_wakes_the_relay_and_it_lets_go_of_its_connections(
    outbox: tuple[asyncpg.Pool, str, KafkaSender],
) -> None:
    pool, _, sender = outbox
    relay = OutboxRelay(pool, sender, poll_interval_s=600, sweep_interval_s=600)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    await asyncio.sleep(0.5)  # its first pass is done; it waits for news or the next poll
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 2)  # not 600 s
    await asyncio.wait_for(pool.close(), 2)  # the listening connection is back in the pool


async def test_the_readiness_probe_names_consumers_that_get_no_batch_through(
    outbox: tuple[asyncpg.Pool, str, KafkaSender],
) -> None:
    pool, _, _ = outbox
    stall = Stall("claims.checkins", 42.04, "LockNotAvailableError")
    ready = await _ready(pool, [stall])
    assert ready["status"] == "ready"  # a restart would not help; the operator is told
    assert ready["consumers_stalled"] == [
        {"consumer": "claims.checkins", "stalled_s": 42.0, "error": "LockNotAvailableError"}
    ]
    assert (await _ready(pool, []))["consumers_stalled"] == []


async def _cut_off(infra: Infra, pool: asyncpg.Pool, which: str = "true") -> asyncpg.Connection:
    """Ends the connections of the pool's database (`which`: an SQL condition on
    pg_stat_activity), as a database restart or a failover does; returns an administrator's
    connection to the server."""
    database = await pool.fetchval("SELECT current_database()")
    admin = await asyncpg.connect(infra.dsn("postgres"))
    await admin.execute(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND {which}",
        database,
    )
    return admin


async def test_the_relay_outlives_a_database_that_goes_away_and_publishes_once_it_is_back(
    infra: Infra, outbox: tuple[asyncpg.Pool, str, KafkaSender]
) -> None:
    """The listening connection, lost with the database, went back to the pool; asking it
    whether it was closed then raised, out of the relay's retry path: the relay's task
    ended, and the service published nothing more until it was restarted."""
    pool, topic, sender = outbox
    database = await pool.fetchval("SELECT current_database()")
    relay = OutboxRelay(pool, sender, poll_interval_s=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    admin = await asyncpg.connect(infra.dsn("postgres"))
    try:
        await asyncio.sleep(0.5)  # listening, and its first pass is done
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        await _cut_off(infra, pool)
        await asyncio.sleep(1.5)  # passes fail meanwhile: the database refuses connections
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, [_record(topic, n) for n in range(3)])
        await _drained(pool, within_s=5)
        assert not task.done()
    finally:
        await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        await admin.close()
        stop.set()
        await asyncio.wait_for(task, 10)  # and it ends without an error
    assert await _published(infra, topic) == _values(range(3))


async def test_a_relay_whose_listening_connection_is_lost_listens_again(
    infra: Infra, outbox: tuple[asyncpg.Pool, str, KafkaSender]
) -> None:
    """Only the listening connection lost (its server process ended, a proxy's idle
    timeout): the relay went on without notifications, publishing each event only at its
    next poll — a second late, every event, for good."""
    pool, topic, sender = outbox
    # Polls so rarely that only notifications can publish within the test.
    relay = OutboxRelay(pool, sender, poll_interval_s=600, sweep_interval_s=600)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.sleep(0.5)
        admin = await _cut_off(infra, pool, "query LIKE 'LISTEN%'")
        await admin.close()
        await asyncio.sleep(0.5)
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, [_record(topic, 0)])
        await _drained(pool, within_s=3)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert await _published(infra, topic) == _values(range(1))


async def test_a_row_committed_after_a_later_one_goes_out_on_its_own_notification(
    infra: Infra, outbox: tuple[asyncpg.Pool, str, KafkaSender]
) -> None:
    """The sequence gap: a transaction holding a lower seq commits after one holding a
    higher seq, whose range was published meanwhile. Its own commit names its range, so it
    goes out then, without waiting for a sweep."""
    pool, topic, sender = outbox
    relay = OutboxRelay(pool, sender, poll_interval_s=600, sweep_interval_s=600)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.sleep(0.5)  # the first pass (a sweep) is done
        async with pool.acquire() as slow:
            transaction = slow.transaction()
            await transaction.start()
            await enqueue(slow, [_record(topic, 0)])  # the lower seq, not committed yet
            async with pool.acquire() as conn, conn.transaction():
                await enqueue(conn, [_record(topic, 1)])
            await asyncio.sleep(0.5)
            assert await pool.fetchval("SELECT count(*) FROM outbox") == 0  # only seq 2 seen
            await transaction.commit()
        await _drained(pool, within_s=1.5)  # not the next sweep's, 600 s away
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert await _published(infra, topic) == _values(range(2))
