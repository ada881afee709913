"""The ceilings: what a plain aiokafka loop and plain batched inserts achieve here."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from datetime import UTC, datetime

import asyncpg
from aiokafka import AIOKafkaConsumer

from shared.kafka import ensure_topics, make_producer

CHECKIN_SIZE_BYTES = 560  # a signed check-in's JSON body is about this long


async def raw_broker_msgs_per_s(bootstrap: str, messages: int) -> float:
    """Produce `messages` check-in-sized records and consume them with a plain loop,
    concurrently; the rate is messages over the time until the last one is consumed."""
    topic = f"bench.raw-{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, [topic])
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-{topic}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1500,
        max_poll_records=2000,
    )
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=100)
    producer = make_producer(bootstrap, client_id="bench-raw")
    await producer.start()
    payload = os.urandom(CHECKIN_SIZE_BYTES // 2).hex().encode()
    received = 0

    async def consume() -> None:
        nonlocal received
        while received < messages:
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            received += sum(len(records) for records in batch.values())
            if batch:
                await consumer.commit()

    started = time.perf_counter()
    consuming = asyncio.create_task(consume())
    for index in range(messages):
        await producer.send(topic, value=payload, key=str(index % 1000).encode())
    await producer.flush()
    await asyncio.wait_for(consuming, 300)
    elapsed = time.perf_counter() - started
    await producer.stop()
    await consumer.stop()
    return messages / elapsed


async def raw_db_rows_per_s(dsn: str, rows: int, batch: int = 500) -> float:
    """Claim-sized rows, `batch` rows per transaction with COPY, durable commits."""
    conn = await asyncpg.connect(dsn)
    table = f"bench_raw_{uuid.uuid4().hex[:8]}"
    try:
        await conn.execute(
            f"CREATE TABLE {table} (claim_id uuid PRIMARY KEY, checkin_id uuid UNIQUE,"
            " card_id uuid, provider_id uuid, activity_id text, category text,"
            " price_cents bigint, amount_cents bigint, outcome text, occurred_at timestamptz,"
            " decided_at timestamptz)"
        )
        now = datetime.now(UTC)
        provider = uuid.uuid4()
        started = time.perf_counter()
        for offset in range(0, rows, batch):
            records = [
                (
                    uuid.uuid4(),
                    uuid.uuid4(),
                    uuid.uuid4(),
                    provider,
                    "zwaneberg-theater",
                    "culture",
                    1800,
                    1350,
                    "approved",
                    now,
                    now,
                )
                for _ in range(min(batch, rows - offset))
            ]
            async with conn.transaction():
                await conn.copy_records_to_table(table, records=records)
        elapsed = time.perf_counter() - started
        await conn.execute(f"DROP TABLE {table}")
    finally:
        await conn.close()
    return rows / elapsed


def machine_gauge_ms(repeats: int = 3) -> float:
    """A fixed pure-Python workload, in CPU time of this thread: how fast this machine is
    right now, whatever else runs. A shared virtual machine's speed varies by tens of
    percent within minutes; runs (and phases of a run) compare only when their gauges do."""
    timings = []
    for _ in range(repeats):
        started = time.thread_time()
        total = 0
        for i in range(1_000_000):
            total += i
        timings.append((time.thread_time() - started) * 1000)
    return round(sorted(timings)[len(timings) // 2], 1)


# The development machine's gauge in a normal spell reads 18-22 ms; its slow spells 36-65.
NORMAL_GAUGE_MS = 25.0
# Within one run the phases compare only if the machine's speed held: min and max apart by
# more than this share, and the phases ran on different machines, in effect.
STEADY_SPREAD = 0.3


def gauge_warnings(gauge_min_ms: float, gauge_max_ms: float) -> list[str]:
    """What the machine gauge says about how far a run's figures can be trusted."""
    warnings = []
    if gauge_max_ms > NORMAL_GAUGE_MS:
        warnings.append(
            f"machine_gauge_ms reached {gauge_max_ms:.1f} (the development machine in a normal"
            f" spell: under {NORMAL_GAUGE_MS:.0f}): a slow machine; these figures measure it,"
            " not the code"
        )
    if gauge_min_ms > 0 and gauge_max_ms / gauge_min_ms - 1 > STEADY_SPREAD:
        warnings.append(
            f"machine_gauge_ms ranged {gauge_min_ms:.1f}-{gauge_max_ms:.1f}: the machine's speed"
            " changed during the run, so its phases do not compare with each other"
        )
    return warnings
