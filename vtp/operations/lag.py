"""How far each consumer group is behind on each topic: the records after its committed
offsets. Pure, so that the counting rules are tested without a broker."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

Partition = tuple[str, int]  # (topic, partition)


@dataclass(frozen=True)
class TopicLag:
    group: str
    topic: str
    behind: int  # records written but not yet processed (committed) by the group
    partitions_behind: int
    partitions: int


def lag_per_topic(
    group: str,
    committed: Mapping[Partition, int | None],
    starts: Mapping[Partition, int],
    ends: Mapping[Partition, int],
) -> list[TopicLag]:
    """Per topic the group has committed an offset on, how many records it has still to
    process. A partition of such a topic without a committed offset counts from its start:
    that is where our consumers begin (`auto_offset_reset=earliest`). Topics the group has
    never committed on are not its topics and are left out."""
    topics = sorted({topic for (topic, _), offset in committed.items() if offset is not None})
    lags: list[TopicLag] = []
    for topic in topics:
        per_partition = [
            max(0, end - _from(committed.get(p), starts.get(p, 0)))
            for p, end in sorted(ends.items())
            if p[0] == topic
        ]
        lags.append(
            TopicLag(
                group=group,
                topic=topic,
                behind=sum(per_partition),
                partitions_behind=sum(1 for n in per_partition if n),
                partitions=len(per_partition),
            )
        )
    return lags


def _from(committed: int | None, start: int) -> int:
    # A committed offset below the start points at records retention has deleted: the
    # consumer will go on from the start, so only what is there counts.
    return start if committed is None else max(committed, start)


def over(lags: list[TopicLag], limit: int) -> list[TopicLag]:
    """The topics a group is more than `limit` records behind on: what a monitoring check
    alerts on."""
    return [lag for lag in lags if lag.behind > limit]
