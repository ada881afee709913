from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.envelope import EnvelopeError, new_envelope, parse_headers


def test_headers_round_trip_with_correlation_and_causation() -> None:
    first = new_envelope(type="be.t.A", source="/a", subject="s1")
    caused = first.caused(type="be.t.B", source="/b")
    parsed = parse_headers(caused.headers())
    assert parsed == caused
    assert parsed.correlation_id == first.correlation_id == str(first.id)
    assert parsed.causation_id == str(first.id)


def test_missing_id_is_refused_with_the_header_named() -> None:
    headers = [h for h in new_envelope(type="t", source="/s").headers() if h[0] != "ce_id"]
    with pytest.raises(EnvelopeError, match="ce_id"):
        parse_headers(headers)


def test_wrong_spec_version_is_refused() -> None:
    headers = [
        (k, b"0.3" if k == "ce_specversion" else v)
        for k, v in new_envelope(type="t", source="/s").headers()
    ]
    with pytest.raises(EnvelopeError, match="ce_specversion"):
        parse_headers(headers)


def test_naive_time_is_refused() -> None:
    headers = [
        (k, b"2026-11-27T10:00:00" if k == "ce_time" else v)
        for k, v in new_envelope(type="t", source="/s").headers()
    ]
    with pytest.raises(EnvelopeError, match="UTC offset"):
        parse_headers(headers)


@given(st.lists(st.tuples(st.text(max_size=20), st.binary(max_size=2000)), max_size=10))
def test_arbitrary_headers_never_crash(headers: list[tuple[str, bytes]]) -> None:
    # Either a valid envelope or an EnvelopeError with a reason; nothing else escapes.
    with contextlib.suppress(EnvelopeError):
        parse_headers(headers)
