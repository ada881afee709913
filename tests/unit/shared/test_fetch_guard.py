"""shared/fetch_guard.py on fetched bytes built here: every record is handed over once, in
order, a header key that is not UTF-8 with its bytes kept, whatever else the fetch holds."""

from __future__ import annotations

import pytest
from aiokafka.consumer.fetcher import READ_UNCOMMITTED
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
from aiokafka.structs import TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import fetch_guard
from shared.envelope import EnvelopeError, key_bytes, parse_headers, sendable_key
from tests.support.kafka import RawHeaderKey

CODEC_NONE, CODEC_GZIP = 0, 1

Record = tuple[bytes, list[tuple[bytes, bytes]]]  # value, headers as raw bytes


def _batch(base_offset: int, records: list[Record], codec: int = CODEC_NONE) -> bytes:
    builder = _DefaultRecordBatchBuilderPy(2, codec, 0, -1, -1, -1, 1 << 20)
    for delta, (value, headers) in enumerate(records):
        builder.append(delta, 1, b"key", value, [(RawHeaderKey(k), v) for k, v in headers])
    built = bytearray(builder.build())
    # A broker gives a batch its base offset; it is outside the CRC.
    built[0:8] = base_offset.to_bytes(8, "big")
    return bytes(built)


def _fetch(batches: list[list[Record]], codec: int = CODEC_NONE) -> bytes:
    raw, offset = b"", 0
    for records in batches:
        raw += _batch(offset, records, codec)
        offset += len(records)
    return raw


def _handed_over(raw: bytes, fetch_offset: int = 0) -> list[tuple[int, bytes, list[bytes]]]:
    fetch_guard.install()
    from aiokafka.consumer import fetcher

    partition = fetcher.PartitionRecords(
        TopicPartition("t", 0),
        fetcher.MemoryRecords(raw),
        None,
        fetch_offset,
        None,
        None,
        True,
        READ_UNCOMMITTED,
    )
    return [(r.offset, r.value, [key_bytes(k) for k, _ in r.headers]) for r in partition]


GOOD, BAD = b"ce_id", b"\xff\xfe"


@pytest.mark.parametrize("codec", [CODEC_NONE, CODEC_GZIP])
def test_every_record_of_a_fetch_is_handed_over_once_the_bad_key_kept(codec: int) -> None:
    raw = _fetch(
        [
            [(b"a", [(GOOD, b"1")]), (b"b", [(GOOD, b"1")])],
            [(b"c", [(GOOD, b"1")]), (b"poison", [(GOOD, b"1"), (BAD, b"1")]), (b"d", [])],
            [(b"e", [(GOOD, b"1")])],
        ],
        codec,
    )
    assert _handed_over(raw) == [
        (0, b"a", [GOOD]),
        (1, b"b", [GOOD]),
        (2, b"c", [GOOD]),
        (3, b"poison", [GOOD, BAD]),
        (4, b"d", []),
        (5, b"e", [GOOD]),
    ]


def test_a_fetch_from_the_middle_of_a_batch_starts_at_its_offset() -> None:
    raw = _fetch([[(b"a", []), (b"poison", [(BAD, b"")]), (b"b", []), (b"poison2", [(BAD, b"")])]])
    assert [offset for offset, *_ in _handed_over(raw, fetch_offset=2)] == [2, 3]


def test_a_fetch_ending_in_part_of_a_batch_hands_over_the_whole_batches() -> None:
    whole = _fetch([[(b"a", []), (b"poison", [(BAD, b"")])]])
    partial = _batch(2, [(b"b", [])])[:-3]
    assert [value for _, value, _ in _handed_over(whole + partial)] == [b"a", b"poison"]


# Keys that are UTF-8 and keys that mostly are not.
header_key = st.one_of(st.text(max_size=6).map(str.encode), st.binary(max_size=6))
record = st.tuples(
    st.binary(max_size=8), st.lists(st.tuples(header_key, st.binary(max_size=4)), max_size=3)
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(record, min_size=1, max_size=4), min_size=1, max_size=4))
def test_whatever_the_header_keys_every_record_comes_through_once_in_order(
    batches: list[list[Record]],
) -> None:
    expected = [
        (offset, value, [k for k, _ in headers])
        for offset, (value, headers) in enumerate(r for batch in batches for r in batch)
    ]
    assert _handed_over(_fetch(batches)) == expected


def test_the_envelope_refuses_a_key_that_is_not_utf8_and_names_its_bytes() -> None:
    escaped = BAD.decode(errors="surrogateescape")
    with pytest.raises(EnvelopeError, match=r"header key b'\\xff\\xfe' is not UTF-8"):
        parse_headers([("ce_specversion", b"1.0"), (escaped, b"1")])


def test_a_key_that_is_not_utf8_is_sent_on_with_its_bytes_written_out() -> None:
    assert sendable_key(BAD.decode(errors="surrogateescape")) == "\\xff\\xfe"
    assert sendable_key("ce_id") == "ce_id"
    assert sendable_key("é\x00") == "é\x00"  # UTF-8, if odd: the outbox stores it as it is
