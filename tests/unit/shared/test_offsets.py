"""Background offset commits: only processed offsets, the next one to read per partition,
never for a partition the consumer no longer owns, and a failed commit is not fatal."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition

from shared.deadletter import SourceRecord
from shared.offsets import OffsetCommitter


class FakeConsumer:
    def __init__(self, owned: set[TopicPartition], fail: bool = False) -> None:
        self.owned = owned
        self.fail = fail
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return self.owned

    async def commit(self, offsets: Any = None) -> None:
        if self.fail:
            raise RuntimeError("coordinator moved")
        self.commits.append(dict(offsets))


def _records(topic: str, partition: int, *offsets: int) -> list[SourceRecord]:
    return [SourceRecord(topic, partition, o, b"k", b"{}", []) for o in offsets]


A0, A1, B0 = TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)


async def test_commits_the_next_offset_to_read_per_partition_once() -> None:
    consumer = FakeConsumer({A0, A1, B0})
    committer = OffsetCommitter()
    committer.processed(consumer, _records("a", 0, 7, 5, 6) + _records("b", 0, 0))
    committer.processed(consumer, _records("a", 1, 3))
    await committer.flush()
    assert consumer.commits == [{A0: 8, A1: 4, B0: 1}]
    await committer.flush()  # nothing new processed: nothing to commit
    assert len(consumer.commits) == 1


async def test_partitions_lost_in_a_rebalance_are_left_to_their_new_owner() -> None:
    consumer = FakeConsumer({A1})
    committer = OffsetCommitter()
    committer.processed(consumer, _records("a", 0, 1) + _records("a", 1, 9))
    await committer.flush()
    assert consumer.commits == [{A1: 10}]


async def test_a_failed_commit_is_logged_not_raised() -> None:
    consumer = FakeConsumer({A0}, fail=True)
    committer = OffsetCommitter()
    committer.processed(consumer, _records("a", 0, 1))
    await committer.flush()  # the broker will redeliver; the inbox drops the repeats
    consumer.fail = False
    await committer.flush()
    assert consumer.commits == []


@pytest.mark.parametrize("processed", [True, False])
async def test_the_background_task_commits_until_stopped(processed: bool) -> None:
    consumer = FakeConsumer({A0})
    committer = OffsetCommitter(interval_s=0.01)
    if processed:
        committer.processed(consumer, _records("a", 0, 41))
    stop = asyncio.Event()
    task = asyncio.create_task(committer.run(stop))
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert consumer.commits == ([{A0: 42}] if processed else [])
