"""The CPU-bound ceiling the benchmark reports next to the measured rate."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from vtp.bench.e2e import cpu_bound_rate


def test_two_cores_and_four_tenths_of_a_millisecond_make_five_thousand_a_second() -> None:
    assert (
        cpu_bound_rate({"claims": 0.2, "postgres": 0.1, "broker": 0.06, "bench": 0.04}, 2) == 5000
    )


def test_no_cpu_measured_gives_no_ceiling() -> None:
    assert cpu_bound_rate({}, 2) == 0


@given(
    spent=st.dictionaries(st.text(max_size=8), st.floats(0.001, 5), min_size=1, max_size=8),
    cores=st.integers(1, 64),
)
def test_the_ceiling_times_the_cpu_per_checkin_fills_every_core(
    spent: dict[str, float], cores: int
) -> None:
    rate = cpu_bound_rate(spent, cores)
    # Rounded to a whole check-in a second: at most half a check-in's CPU off a full machine.
    assert abs(rate * sum(spent.values()) - cores * 1000) <= sum(spent.values()) / 2 + 1e-6
