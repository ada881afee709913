"""A batch that keeps failing for a reason that is not its messages' (a missing table, a
permission) is consumed again after a pause that grows, not at once in a loop."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.runtime import BATCH_FAILURE_BACKOFF_MAX_S, batch_failure_backoff_s


def test_the_first_pause_is_short_and_it_doubles() -> None:
    assert [batch_failure_backoff_s(n) for n in (1, 2, 3)] == [0.2, 0.4, 0.8]


@given(st.integers(min_value=1, max_value=10**9))
def test_the_pause_grows_and_stays_bounded(failures: int) -> None:
    pause = batch_failure_backoff_s(failures)
    assert 0.2 <= pause <= BATCH_FAILURE_BACKOFF_MAX_S
    assert batch_failure_backoff_s(failures + 1) >= pause
