"""The counting rules of `vtp lag`: what a consumer group has still to process."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vtp.operations.lag import TopicLag, lag_per_topic, over


def test_records_after_the_committed_offsets_are_behind_per_topic() -> None:
    ends = {("a", 0): 10, ("a", 1): 4, ("b", 0): 7, ("c", 0): 3}
    starts = {("a", 0): 0, ("a", 1): 0, ("b", 0): 2, ("c", 0): 0}
    committed = {("a", 0): 6, ("a", 1): None, ("b", 0): 7, ("c", 0): None}
    assert lag_per_topic("claims", committed, starts, ends) == [
        # a partition never committed on counts from its start; topic c is not the group's
        TopicLag("claims", "a", behind=8, partitions_behind=2, partitions=2),
        TopicLag("claims", "b", behind=0, partitions_behind=0, partitions=1),
    ]


def test_an_offset_before_the_start_counts_only_what_retention_kept() -> None:
    lags = lag_per_topic("g", {("a", 0): 3}, {("a", 0): 100}, {("a", 0): 150})
    assert [lag.behind for lag in lags] == [50]


def test_an_alert_names_only_the_topics_over_the_limit() -> None:
    lags = [TopicLag("g", "a", 5, 1, 8), TopicLag("g", "b", 6, 1, 8)]
    assert over(lags, 5) == [lags[1]]
    assert over(lags, 6) == []


partitions = st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 3))


@given(
    st.dictionaries(
        partitions,
        st.tuples(st.integers(0, 1_000), st.integers(0, 1_000), st.none() | st.integers(0, 2_000)),
    )
)
def test_behind_is_every_record_between_where_the_group_goes_on_and_the_end(
    layout: dict[tuple[str, int], tuple[int, int, int | None]],
) -> None:
    starts = {p: min(a, b) for p, (a, b, _) in layout.items()}
    ends = {p: max(a, b) for p, (a, b, _) in layout.items()}
    committed = {p: c for p, (_, _, c) in layout.items()}
    lags = lag_per_topic("g", committed, starts, ends)

    # The group's topics are exactly those with a committed offset somewhere.
    assert [lag.topic for lag in lags] == sorted(
        {t for (t, _), c in committed.items() if c is not None}
    )
    for lag in lags:
        mine = [p for p in layout if p[0] == lag.topic]
        # Where it goes on: its committed offset, or the start (what retention deleted is gone).
        goes_on = {p: max(committed[p] or 0, starts[p]) for p in mine}
        assert lag.behind == sum(max(0, ends[p] - goes_on[p]) for p in mine)
        assert lag.partitions == len(mine)
        assert lag.partitions_behind == sum(1 for p in mine if ends[p] > goes_on[p])
        assert 0 <= lag.behind <= sum(ends[p] - starts[p] for p in mine)
