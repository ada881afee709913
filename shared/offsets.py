"""Consumer offsets, committed in the background a few times a second.

A batch's offsets may be committed only after its database transaction; they need not be
committed before the next batch is fetched. Committing after every batch put a broker
round trip (~4 ms on the embedded broker) into every turn of the consume loop and a commit
request per batch onto the broker. Here the loop only notes what it has processed, and a
background task commits the highest processed offset per partition every interval.

Delivery stays at-least-once: only processed offsets are ever committed. A crash or a
rebalance loses at most an interval's commits; the broker then redelivers those batches
and the inbox drops them (the same as a crash between a commit and its offset commit).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any, Protocol

from aiokafka import TopicPartition

from shared.deadletter import SourceRecord
from shared.logging import get_logger

log = get_logger(__name__)


class CommittingConsumer(Protocol):
    def assignment(self) -> set[TopicPartition]: ...

    async def commit(self, offsets: Any = None) -> None: ...


class OffsetCommitter:
    def __init__(self, interval_s: float = 0.2) -> None:
        self.interval_s = interval_s
        self._pending: dict[CommittingConsumer, dict[TopicPartition, int]] = {}

    def processed(self, consumer: CommittingConsumer, records: Iterable[SourceRecord]) -> None:
        """Note records whose effects are committed in the database."""
        offsets = self._pending.setdefault(consumer, {})
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            offsets[partition] = max(offsets.get(partition, 0), record.offset + 1)

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        for consumer, offsets in pending.items():
            # A partition taken away by a rebalance is not ours to commit: its new owner
            # starts from the last commit and the inbox drops what we already applied.
            owned = consumer.assignment()
            mine = {tp: offset for tp, offset in offsets.items() if tp in owned}
            if not mine:
                continue
            try:
                await consumer.commit(mine)
            except Exception as exc:  # the broker redelivers; the inbox drops the repeats
                log.warning("offset commit failed", error=type(exc).__name__, detail=str(exc)[:200])

    async def run(self, stop: asyncio.Event) -> None:
        """Commit every interval until `stop`; the last flush is the runtime's, before it
        stops the consumers."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
            if stop.is_set():
                return
            await self.flush()
