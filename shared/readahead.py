"""Consuming with the next batch read ahead.

A batch spends much of its time waiting for PostgreSQL: its inbox claim, its reads, its
writes and its commit. While it waits, the event loop decodes the records the consumer
has already fetched in the background and hands them to the processor's prepare hook
(claims starts their signature checks there), so that the next batch's CPU work overlaps
this one's waits. Transactions still run one at a time and in offset order: reading
ahead never starts one, and the next batch's transaction begins only after this one's
commit. A failure rewinds every partition to the earliest record not yet applied, the
batch read ahead included, so nothing is skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from aiokafka import TopicPartition

from shared.consumer import DecodedBatch
from shared.deadletter import SourceRecord
from shared.logging import get_logger
from shared.offsets import CommittingConsumer

log = get_logger(__name__)

# Batches applied per call before control goes back to the subscriber's own loop (which
# then fetches a batch without reading ahead): bounds how long one call can keep it.
MAX_BATCHES_PER_CALL = 16


class ReadAheadConsumer(CommittingConsumer, Protocol):
    """The aiokafka consumer behind a subscriber, as far as used here."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[Any]]: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...


class Processor(Protocol):
    """What consume_ahead needs of a BatchProcessor."""

    def decode_batch(self, records: Sequence[SourceRecord]) -> DecodedBatch: ...

    async def apply_batch(self, batch: DecodedBatch) -> None: ...


# Kafka's timestamp types: 0 the producer's CreateTime, 1 the broker's LogAppendTime.
LOG_APPEND_TIME = 1


def source_record(r: Any) -> SourceRecord:
    """An aiokafka ConsumerRecord as the processor sees it."""
    return SourceRecord(
        topic=r.topic,
        partition=r.partition,
        offset=r.offset,
        key=r.key,
        value=r.value,
        headers=list(r.headers or ()),
        appended_at=(
            datetime.fromtimestamp(r.timestamp / 1000, UTC)
            if r.timestamp_type == LOG_APPEND_TIME
            else None
        ),
    )


async def consume_ahead(
    processor: Processor,
    consumer: ReadAheadConsumer,
    records: Sequence[SourceRecord],
    *,
    max_records: int,
    applied: Callable[[Sequence[SourceRecord]], None],
    max_batches: int = MAX_BATCHES_PER_CALL,
) -> None:
    """Apply `records`, then whatever the consumer had fetched meanwhile, batch after
    batch; `applied` is called after each batch's commit, in order."""
    try:
        current = processor.decode_batch(records)
    except BaseException:
        _rewind(consumer, records)
        raise
    for turn in range(max_batches):
        applying = asyncio.ensure_future(processor.apply_batch(current))
        # Rewound with this batch if anything fails: fetched, so past the consumer's
        # position, even if decoding them is what failed.
        ahead: list[SourceRecord] = []
        following: DecodedBatch | None = None
        try:
            if turn + 1 < max_batches:
                ahead = await _read_ahead(consumer, max_records)
                following = processor.decode_batch(ahead) if ahead else None
            await applying
        except BaseException:
            applying.cancel()
            _rewind(consumer, [*current.records, *ahead])
            raise
        applied(current.records)
        if following is None:
            return
        current = following


async def _read_ahead(consumer: ReadAheadConsumer, max_records: int) -> list[SourceRecord]:
    """What the consumer has fetched already; empty if nothing is waiting."""
    try:
        fetched = await consumer.getmany(timeout_ms=0, max_records=max_records)
    except Exception as exc:  # the subscriber's own loop fetches again, and reports it
        log.warning("reading ahead failed", error=type(exc).__name__, detail=str(exc)[:200])
        return []
    return [source_record(r) for part in fetched.values() for r in part]


def _rewind(consumer: ReadAheadConsumer, records: Sequence[SourceRecord]) -> None:
    earliest: dict[TopicPartition, int] = {}
    for r in records:
        partition = TopicPartition(r.topic, r.partition)
        earliest[partition] = min(earliest.get(partition, r.offset), r.offset)
    for partition, offset in earliest.items():
        try:
            consumer.seek(partition, offset)
        except Exception as exc:  # taken away by a rebalance, or the consumer is closing:
            # its next owner starts from the last committed offset, which is no later.
            log.warning("rewind failed", partition=partition.partition, error=type(exc).__name__)
