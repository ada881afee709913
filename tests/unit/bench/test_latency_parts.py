"""The benchmark's latency in two parts: which side of the decision a slow tail is on."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vtp.bench.e2e import Latency


def test_each_check_in_splits_at_its_decision() -> None:
    latency = Latency.of([(100.000, 100.010, 100.025), (200.000, 200.004, 200.090)])
    assert [round(v, 6) for v in latency.to_decision] == [4.0, 10.0]
    assert [round(v, 6) for v in latency.decision_to_outcome] == [15.0, 86.0]
    assert [round(v, 6) for v in latency.total] == [25.0, 90.0]
    parts = latency.percentiles()
    assert set(parts) == {"emission_to_decision", "decision_to_outcome"}
    assert parts["decision_to_outcome"]["p99"] == 86.0  # the slow part of the slow one
    assert latency.p(99) == 90.0


_moments = st.tuples(st.floats(0, 1e6), st.floats(0, 10), st.floats(0, 10)).map(
    lambda t: (t[0], t[0] + t[1], t[0] + t[1] + t[2])
)


@given(st.lists(_moments, min_size=1, max_size=200))
def test_the_parts_add_up_to_the_whole(timings: list[tuple[float, float, float]]) -> None:
    latency = Latency.of(timings)
    assert len(latency.total) == len(latency.to_decision) == len(timings)
    assert latency.total == sorted(latency.total)
    expected = sorted((o - e) * 1000 for e, _, o in timings)
    assert all(abs(a - b) <= 1e-3 for a, b in zip(latency.total, expected, strict=True))
    # No part is longer than the whole way: each percentile of a part is at most the
    # same percentile of the total.
    for part in (latency.to_decision, latency.decision_to_outcome):
        assert all(p <= t + 1e-3 for p, t in zip(part, latency.total, strict=True))
