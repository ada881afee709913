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
from faststream.kafka import KafkaBroker

from shared.logging import get_logger
from shared.outbox import OutgoingRecord
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
    """Sends a batch of records and waits for every acknowledgement."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def send_all(self, records: Sequence[OutgoingRecord]) -> None:
        futures = [
            await self._producer.send(r.topic, value=r.payload, key=r.key, headers=r.headers)
            for r in records
        ]
        await asyncio.gather(*futures)


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
