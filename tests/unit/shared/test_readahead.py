"""Reading ahead: the next batch is decoded while this one is applied, batches are applied
one at a time in order, and a failure rewinds to the earliest record not applied."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import ConsumerRecord

from shared.consumer import DecodedBatch
from shared.deadletter import SourceRecord
from shared.readahead import LOG_APPEND_TIME, consume_ahead, source_record

TP0, TP1 = TopicPartition("t", 0), TopicPartition("t", 1)


def _records(tp: TopicPartition, first: int, count: int) -> list[ConsumerRecord[bytes, bytes]]:
    return [
        ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, b"k", b"v", None, 1, 1, [])
        for offset in range(first, first + count)
    ]


class FakeConsumer:
    def __init__(self, fetched: list[dict[TopicPartition, list[Any]]]) -> None:
        self.fetched = fetched
        self.seeks: dict[TopicPartition, int] = {}

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[Any]]:
        return self.fetched.pop(0) if self.fetched else {}

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.seeks[partition] = offset

    def assignment(self) -> set[TopicPartition]:
        return {TP0, TP1}

    async def commit(self, offsets: Any = None) -> None:
        return None


class FakeProcessor:
    """Names each batch by its first offset; applying one takes two turns of the loop."""

    def __init__(self, fail_at: int | None = None, decode_fails_at: int | None = None) -> None:
        self.steps: list[str] = []
        self.fail_at = fail_at
        self.decode_fails_at = decode_fails_at
        self.applied: list[int] = []

    def decode_batch(self, records: Sequence[SourceRecord]) -> DecodedBatch:
        self.steps.append(f"decode {records[0].offset}")
        if records[0].offset == self.decode_fails_at:
            raise RecursionError("maximum recursion depth exceeded")
        return DecodedBatch(records)

    async def apply_batch(self, batch: DecodedBatch) -> None:
        name = batch.records[0].offset
        self.steps.append(f"begin {name}")
        await asyncio.sleep(0)  # the database's round trips
        await asyncio.sleep(0)
        if name == self.fail_at:
            raise RuntimeError("database gone")
        self.steps.append(f"commit {name}")


async def _consume(
    processor: FakeProcessor, consumer: FakeConsumer, max_batches: int = 16
) -> list[int]:
    """The batches applied (by first offset), in order, starting from offsets 0-9."""
    applied: list[int] = []
    first = [SourceRecord("t", 0, offset, b"k", b"v", []) for offset in range(0, 10)]
    try:
        await consume_ahead(
            processor,
            consumer,
            first,
            max_records=100,
            applied=lambda records: applied.append(records[0].offset),
            max_batches=max_batches,
        )
    finally:
        processor.applied = applied
    return applied


async def test_the_next_batch_is_decoded_while_this_one_is_applied_and_applied_after_it() -> None:
    consumer = FakeConsumer([{TP0: _records(TP0, 10, 5)}, {TP0: _records(TP0, 15, 5)}])
    processor = FakeProcessor()
    assert await _consume(processor, consumer) == [0, 10, 15]
    steps = processor.steps
    assert steps.index("decode 10") < steps.index("commit 0") < steps.index("begin 10")
    assert steps.index("decode 15") < steps.index("commit 10") < steps.index("begin 15")
    assert not consumer.seeks


async def test_a_failure_rewinds_every_partition_to_its_earliest_record_not_applied() -> None:
    consumer = FakeConsumer(
        [{TP0: _records(TP0, 10, 5)}, {TP0: _records(TP0, 15, 5), TP1: _records(TP1, 7, 3)}]
    )
    processor = FakeProcessor(fail_at=10)
    with pytest.raises(RuntimeError, match="database gone"):
        await _consume(processor, consumer)
    assert processor.applied == [0]
    # Batch 10 failed with batch 15 (and partition 1's records) read ahead: both rewound.
    assert consumer.seeks == {TP0: 10, TP1: 7}
    assert "begin 15" not in processor.steps


async def test_one_call_applies_a_bounded_number_of_batches() -> None:
    consumer = FakeConsumer([{TP0: _records(TP0, 10 + n, 1)} for n in range(10)])
    assert await _consume(FakeProcessor(), consumer, max_batches=3) == [0, 10, 11]
    assert len(consumer.fetched) == 8  # the rest is left for the subscriber's next call


async def test_a_batch_that_fails_to_decode_is_rewound_not_skipped() -> None:
    consumer = FakeConsumer([{TP0: _records(TP0, 10, 5)}])
    processor = FakeProcessor(decode_fails_at=0)
    with pytest.raises(RecursionError):
        await _consume(processor, consumer)
    assert processor.applied == []
    assert consumer.seeks == {TP0: 0}


async def test_a_read_ahead_batch_that_fails_to_decode_is_rewound_with_every_partition() -> None:
    consumer = FakeConsumer([{TP0: _records(TP0, 10, 5), TP1: _records(TP1, 7, 3)}])
    processor = FakeProcessor(decode_fails_at=10)
    with pytest.raises(RecursionError):
        await _consume(processor, consumer)
    # Batch 0 was being applied, and is given up too: nothing was committed after it.
    assert processor.applied == []
    assert consumer.seeks == {TP0: 0, TP1: 7}


def test_a_record_knows_when_the_broker_took_it_only_when_the_broker_stamped_it() -> None:
    def record(timestamp_type: int) -> Any:
        # ConsumerRecord(topic, partition, offset, timestamp, timestamp_type, key, value, …)
        return ConsumerRecord(
            "t", 0, 7, 1_764_288_000_000, timestamp_type, b"k", b"v", None, 1, 1, []
        )

    stamped = source_record(record(LOG_APPEND_TIME))
    assert stamped.appended_at == datetime(2025, 11, 28, tzinfo=UTC)
    # The producer's time (a device's clock) is nobody's to trust.
    assert source_record(record(0)).appended_at is None
