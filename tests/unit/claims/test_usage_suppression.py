"""The usage report never shows a count of one to four card holders, nor a figure that the
totals and the other rows would give away by subtraction."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.claims.usage import MIN_CELL, Use, group_rows, shown, take_up_basis_points

GROUPS = st.sampled_from(["Hallaar", "Heist-Centrum", "Itegem", "Wiekevorst", "(onbekend)"])
USES = st.builds(
    lambda checkins, holders, cents: Use(max(checkins, holders), holders, cents),
    st.integers(0, 500),
    st.integers(0, 60),
    st.integers(0, 100_000),
)


@given(st.dictionaries(GROUPS, st.integers(0, 60)), st.dictionaries(GROUPS, USES))
def test_no_small_count_and_never_one_hidden_row_alone(
    eligible: dict[str, int], used: dict[str, Use]
) -> None:
    rows = group_rows("sub_municipality", eligible, used)
    for row in rows:
        for figure in ("eligible_holders", "active_holders"):
            assert row[figure] is None or row[figure] == 0 or row[figure] >= MIN_CELL
        if row["active_holders"] is None:
            assert row["checkins"] is None and row["discount_cents"] is None
    hidden = [r for r in rows if r["active_holders"] is None or r["eligible_holders"] is None]
    assert len(hidden) != 1 or len(rows) == 1


def test_a_second_row_is_hidden_only_when_one_alone_would_be() -> None:
    both_large = group_rows("g", {"a": 10, "b": 20}, {"a": Use(9, 6, 90), "b": Use(12, 7, 120)})
    assert [r["active_holders"] for r in both_large] == [6, 7]
    one_small = group_rows(
        "g", {"a": 10, "b": 20, "c": 3}, {"a": Use(9, 6, 90), "b": Use(12, 7, 120)}
    )
    assert [r["eligible_holders"] for r in one_small] == [None, 20, None]  # a, the smaller


def test_counts_and_take_up() -> None:
    assert [shown(n) for n in (0, 1, 4, 5, 6)] == [0, None, None, 5, 6]
    assert take_up_basis_points(2, 3) == 6666  # rounded down
    assert take_up_basis_points(None, 30) is None
    assert take_up_basis_points(0, 0) is None
