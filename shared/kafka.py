"""Kafka plumbing: the FastStream broker, a batch-sending producer and topic creation.

The embedded broker (Tansu) cannot do idempotent producers or transactions, so neither is
ever enabled: exactly-once effects come from the inbox and outbox in PostgreSQL instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.producer.message_accumulator import BatchBuilder
from faststream.kafka import KafkaBroker

from shared.logging import get_logger
from shared.outbox import OutgoingRecord
from shared.partitioning import partition_for
from shared.topics import ALL_TOPICS, DEAD_LETTER_TOPIC, DEFAULT_PARTITIONS

log = get_logger(__name__)


def make_broker(bootstrap_servers: str, client_id: str) -> KafkaBroker:
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        request_timeout_ms=30_000,
        graceful_timeout=20.0,
        logger=None,  # our own structured logs say what happened, once
    )


def make_producer(bootstrap_servers: str, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        linger_ms=2,
        max_batch_size=256 * 1024,
        request_timeout_ms=30_000,
        enable_idempotence=False,
    )


class KafkaSender:
    """Sends a batch of records and waits for every acknowledgement.

    Records are grouped per partition (Kafka's default key partitioner, so a key lands
    where any other producer would put it) and handed over as one record batch each: one
    future per partition instead of one per record, 5–8 µs less CPU per record."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def send_all(self, records: Sequence[OutgoingRecord]) -> None:
        partitions: dict[str, list[int]] = {}
        groups: dict[tuple[str, int], list[OutgoingRecord]] = {}
        for r in records:
            known = partitions.get(r.topic)
            if known is None:
                known = partitions[r.topic] = sorted(await self._producer.partitions_for(r.topic))
            partition = partition_for(r.key, known)
            groups.setdefault((r.topic, partition), []).append(r)
        futures = []
        for (topic, partition), group in groups.items():
            batch = self._producer.create_batch()
            for r in group:
                if not _append(batch, r):
                    futures.append(
                        await self._producer.send_batch(batch, topic, partition=partition)
                    )
                    batch = self._producer.create_batch()
                    if not _append(batch, r):
                        raise ValueError(f"a record of {len(r.payload)} bytes exceeds a batch")
            futures.append(await self._producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)


def _append(batch: BatchBuilder, r: OutgoingRecord) -> bool:
    return batch.append(timestamp=None, key=r.key, value=r.payload, headers=r.headers) is not None


async def ensure_topics(
    bootstrap_servers: str,
    names: Iterable[str] | None = None,
    *,
    partitions: int = DEFAULT_PARTITIONS,
    timeout_s: float = 60.0,
) -> None:
    """Create the topics up front: a first consumer-group join on a missing topic is slow."""
    wanted = (
        list(names) if names is not None else [t.name for t in ALL_TOPICS] + [DEAD_LETTER_TOPIC]
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=30_000)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await admin.start()
            break
        except Exception:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
    try:
        existing = set(await admin.list_topics())
        missing = [n for n in wanted if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # a concurrent starter won
                await admin.create_topics(
                    [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in missing]
                )
            log.info("topics created", topics=len(missing), partitions=partitions)
    finally:
        await admin.close()
