"""Poison that once got past the dead-letter path: a body nested too deeply for the JSON
parser, a decoder that raises, header bytes the outbox's jsonb cannot hold, a message too
big to copy whole. Each must become a dead letter that can be stored and published."""

from __future__ import annotations

from typing import Any, cast

import asyncpg
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import field_validator

from shared.consumer import BatchProcessor, Incoming, decode
from shared.deadletter import (
    OVERSIZED_KEPT_BYTES,
    DeadLetter,
    DeadLetterReason,
    SourceRecord,
    dead_letter_record,
)
from shared.envelope import EnvelopeError, new_envelope, parse_headers
from shared.events.base import EventPayload
from shared.outbox import headers_from_json, headers_to_json
from shared.topics import Topic


class Gadget(EventPayload):
    name: str

    @field_validator("name")
    @classmethod
    def _not_cursed(cls, value: str) -> str:
        if value == "cursed":
            return str(1 // 0)  # a bug: not a ValueError, so pydantic lets it through
        return value


GADGETS = Topic("test.gadgets.v1", "be.test.Gadget", Gadget, lambda p: p.name)
TOPICS = {GADGETS.name: GADGETS}


def _record(value: bytes, offset: int = 0, headers: list[tuple[str, bytes]] | None = None) -> Any:
    if headers is None:
        headers = new_envelope(type=GADGETS.event_type, source="/t").headers()
    return SourceRecord(GADGETS.name, 0, offset, b"k", value, headers)


@pytest.mark.parametrize("body", [b"[" * 1000, b'{"a":' * 1000, b"[" * 60_000])
def test_a_body_nested_too_deeply_is_dead_lettered_as_malformed(body: bytes) -> None:
    result = decode(_record(body), TOPICS)
    assert isinstance(result, DeadLetter)
    assert result.reason is DeadLetterReason.MALFORMED_JSON
    assert "nested too deeply" in result.detail


def test_a_record_whose_decoding_raises_is_dead_lettered_and_the_others_decoded() -> None:
    processor = BatchProcessor("test", [GADGETS], _no_handler, cast(asyncpg.Pool, None))
    records = [
        _record(b'{"name": "one"}', 0),
        _record(b'{"name": "cursed"}', 1),
        _record(b'{"name": "two"}', 2),
    ]
    batch = processor.decode_batch(records)
    assert [e.payload.name for e in batch.events] == ["one", "two"]
    [letter] = batch.dead
    assert letter.source.offset == 1
    assert letter.reason is DeadLetterReason.HANDLER_ERROR
    assert "ZeroDivisionError" in letter.detail


async def _no_handler(_conn: Any, _batch: list[Incoming[Any]]) -> list[DeadLetter]:
    return []


header_lists = st.lists(st.tuples(st.text(max_size=12), st.binary(max_size=40)), max_size=8)


@given(headers=header_lists)
def test_outbox_headers_survive_any_bytes_and_store_no_nul(
    headers: list[tuple[str, bytes]],
) -> None:
    stored = headers_to_json(headers)
    # jsonb refuses the NUL character in a string, wherever it is.
    assert all("\0" not in text for pair in orjson.loads(stored) for text in pair)
    assert headers_from_json(stored) == headers


def test_a_nul_header_is_stored_tagged_and_rows_stored_before_are_still_read() -> None:
    stored = headers_to_json([("a", b"x\x00y"), ("b", b"plain")])
    assert orjson.loads(stored) == [["YQ==", "eAB5", "b64"], ["b", "plain"]]
    assert headers_from_json('[["a", "x\\u00ff"], ["b", ""]]') == [("a", b"x\xff"), ("b", b"")]


@pytest.mark.parametrize("name", ["correlation_id", "causation_id", "ce_type", "ce_subject"])
@pytest.mark.parametrize("control", [b"\x00", b"\n", b"\x1b"])
def test_an_envelope_value_with_a_control_character_is_refused(name: str, control: bytes) -> None:
    headers = [
        (k, v) for k, v in new_envelope(type="t", source="/s", subject="s").headers() if k != name
    ]
    headers.append((name, b"abc" + control + b"def"))
    with pytest.raises(EnvelopeError, match=f"{name}.*control character"):
        parse_headers(headers)
    # Only the envelope's own values: other headers, and other characters, are not ours.
    fine = new_envelope(type="t", source="/s", subject="café\u00a0één").headers()
    assert parse_headers([*fine, ("traceparent", b"a" + control)]).subject == "café\u00a0één"


def test_a_valid_event_with_nul_in_its_correlation_id_is_dead_lettered() -> None:
    headers = new_envelope(type=GADGETS.event_type, source="/t", correlation_id="a\0b").headers()
    result = decode(_record(b'{"name": "one"}', headers=headers), TOPICS)
    assert isinstance(result, DeadLetter)
    assert result.reason is DeadLetterReason.INVALID_ENVELOPE


def test_an_oversized_dead_letter_keeps_a_prefix_and_says_how_big_the_original_was() -> None:
    payload = bytes(range(256)) * 4000  # ~1 MB: near the broker's limit
    letter = DeadLetter(_record(payload), DeadLetterReason.OVERSIZED, "too big")
    record = dead_letter_record(letter, "test")
    assert record.payload == payload[:OVERSIZED_KEPT_BYTES]
    headers = dict(record.headers)
    assert headers["dlq_truncated_from_bytes"] == str(len(payload)).encode()
    assert headers["dlq_reason"] == b"oversized"
    assert len(record.payload) + sum(len(k) + len(v) for k, v in record.headers) < 70 * 1024
    # Any other reason keeps the message whole: it fitted under the consumer's limit.
    refused = DeadLetter(letter.source, DeadLetterReason.SCHEMA_VIOLATION, "no")
    assert dead_letter_record(refused, "test").payload == payload


def test_a_dead_letter_whose_detail_quotes_a_lone_surrogate_can_be_written() -> None:
    # json.loads lets "\\ud800" through; a handler's reason may quote what it found.
    letter = DeadLetter(_record(b"{}"), DeadLetterReason.SCHEMA_VIOLATION, "bad name '\ud800'")
    headers = dict(dead_letter_record(letter, "test").headers)
    assert headers["dlq_detail"] == b"bad name '\\ud800'"


def test_a_header_without_a_value_does_not_stop_the_dead_letter_being_stored() -> None:
    # Kafka allows a header with a null value and aiokafka hands it over as None; storing
    # the letter's headers raised, and the batch was consumed again for ever.
    headers = [*new_envelope(type=GADGETS.event_type, source="/t").headers(), ("x-null", None)]
    record = _record(b"not json", headers=cast(list[tuple[str, bytes]], headers))
    letter = decode(record, TOPICS)
    assert isinstance(letter, DeadLetter)
    stored = headers_from_json(headers_to_json(dead_letter_record(letter, "test").headers))
    assert ("x-null", b"") in stored


def test_a_dead_letter_is_one_per_message_and_position() -> None:
    def letter_id(body: bytes, offset: int = 7) -> str:
        letter = DeadLetter(_record(body, offset), DeadLetterReason.MALFORMED_JSON, "no")
        return dead_letter_record(letter, "test").event_id

    assert letter_id(b"not json") == letter_id(b"not json")  # redelivered: the same row
    assert letter_id(b"not json") != letter_id(b"not json", offset=8)
    # A topic made anew numbers its records from 0 again: another message at a position
    # seen before is another dead letter.
    assert letter_id(b"not json") != letter_id(b"other junk")
