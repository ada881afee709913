"""Reading topics from the outside, as an independent observer would."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from shared.kafka import caught_up


async def read_topic(
    bootstrap: str, topic: str, *, idle_s: float = 2.0, timeout_s: float = 30
) -> list[Any]:
    """Every record on a topic, from the start, until it stays quiet for `idle_s` once read
    to its end (a busy broker's slow answer is not the end)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-reader-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Any] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    quiet_since = loop.time()
    try:
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            got = [r for rs in batch.values() for r in rs]
            if got or not await caught_up(consumer):
                records.extend(got)
                quiet_since = loop.time()
            elif loop.time() - quiet_since > idle_s:
                break
    finally:
        await consumer.stop()
    return records


async def produce_raw(
    bootstrap: str,
    topic: str,
    value: bytes,
    *,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key, headers=headers or [])
    finally:
        await producer.stop()


def header(record: Any, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return bytes(value).decode()
    return None


async def uncommitted(bootstrap: str, group: str, topic: str) -> int:
    """How many records of `topic` the consumer group has not committed yet. (A consumer
    that never subscribes does not join the group; it only reads the group's offsets.)"""
    ends: dict[int, int] = {}
    for record in await read_topic(bootstrap, topic, idle_s=1.0):
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await reader.start()
    try:
        left = 0
        for partition, end in ends.items():
            committed = await reader.committed(TopicPartition(topic, partition))
            left += end - (committed or 0)
        return left
    finally:
        await reader.stop()
