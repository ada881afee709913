"""Reading topics from the outside, as an independent observer would."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy

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


class RawHeaderKey(str):
    """A header key that aiokafka's Python batch builder writes as the given bytes, which
    need not be UTF-8 (its encoder refuses to make such a key; a broker takes any bytes)."""

    raw: bytes

    def __new__(cls, raw: bytes) -> RawHeaderKey:
        key = super().__new__(cls, "k")
        key.raw = raw
        return key

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


async def produce_raw_batch(
    bootstrap: str,
    topic: str,
    records: list[tuple[bytes, list[tuple[bytes, bytes]]]],
    *,
    key: bytes = b"k",
) -> None:
    """`records` (value, headers with raw keys) as one batch on partition 0, written by
    aiokafka's pure-Python builder, which takes any bytes for a header key."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        batch = producer.create_batch()
        batch._builder = _DefaultRecordBatchBuilderPy(2, 0, 0, -1, -1, 0, 1 << 20)
        for value, headers in records:
            appended = batch.append(
                key=key,
                value=value,
                timestamp=None,
                headers=[(RawHeaderKey(k), v) for k, v in headers],
            )
            assert appended is not None, "the batch is full"
        await (await producer.send_batch(batch, topic, partition=0))
    finally:
        await producer.stop()
