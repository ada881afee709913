from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from shared.outbox import committed_range

seqs = st.integers(min_value=1, max_value=2**63 - 1)


@given(seqs, seqs)
def test_a_range_is_read_back_as_written(a: int, b: int) -> None:
    low, high = min(a, b), max(a, b)
    assert committed_range(f"{low}-{high}") == (low, high)


@given(seqs, seqs)
def test_a_reversed_range_names_nothing(a: int, b: int) -> None:
    if a != b:
        assert committed_range(f"{max(a, b)}-{min(a, b)}") is None


@given(st.text() | st.from_regex(r"\A[0-9²٣]{0,3}-[0-9²٣]{0,3}\Z"))
def test_anything_else_names_nothing_and_never_raises(text: str) -> None:
    result = committed_range(text)
    if result is not None:
        low, high = text.split("-")
        assert (int(low), int(high)) == result
        assert low.isascii() and high.isascii()


def test_the_empty_payload_of_older_writers_names_nothing() -> None:
    assert committed_range("") is None
    assert committed_range("12") is None
    assert committed_range("-12") is None
    assert committed_range("1-2-3") is None
