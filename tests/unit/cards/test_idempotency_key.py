"""The Idempotency-Key header: 1 to 255 printable ASCII characters, one per request; a wrong
one is refused naming the header and the reason, never echoing the value."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.cards.domain.errors import InvalidField
from services.cards.domain.idempotency import check_same_request, parse_key

printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=255)


def test_no_header_is_no_key() -> None:
    assert parse_key([]) is None


@given(printable)
def test_printable_ascii_up_to_255_is_the_key_as_sent(key: str) -> None:
    assert parse_key([key]) == key


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ([""], "is empty"),
        (["k" * 256], "is 256 characters long; at most 255"),
        (["tab\there"], "printable ASCII"),
        (["line\nbreak"], "printable ASCII"),
        (["sleutel-é"], "printable ASCII"),
        (["\x7f"], "printable ASCII"),
        (["key-1", "key-2"], "sent more than once"),
    ],
)
def test_a_wrong_key_is_refused_with_the_reason(values: list[str], reason: str) -> None:
    with pytest.raises(InvalidField) as refused:
        parse_key(values)
    assert refused.value.field == "Idempotency-Key"
    assert reason in refused.value.reason
    for value in values:
        if value:
            assert value not in refused.value.message


def test_a_key_reused_for_another_request_is_refused() -> None:
    check_same_request(b"same", b"same")
    with pytest.raises(InvalidField) as refused:
        check_same_request(b"first", b"other")
    assert refused.value.field == "Idempotency-Key"
    assert "already used for another request" in refused.value.reason
