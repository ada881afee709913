"""Reading dead letters back, summing them up for an operator, and choosing what to send
back: pure functions over what shared/deadletter.py writes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.deadletter import (
    DeadLetter,
    DeadLetterReason,
    SourceRecord,
    dead_letter_record,
)
from shared.outbox import OutgoingRecord
from vtp.operations.deadletters import (
    Letter,
    dead_lettered_since,
    letter_of,
    parse_since,
    plan_redrive,
    summarise,
)


def original_headers(offset: int) -> list[tuple[str, bytes]]:
    """An original message's headers: one event id per message (per source offset here)."""
    return [("ce_id", f"4f1c-{offset}".encode()), ("ce_type", b"be.vtp.claims.claim-reversed.v1")]


ORIGINAL_HEADERS = original_headers(7)


def _dead(
    reason: DeadLetterReason,
    *,
    consumer: str = "notifications",
    offset: int = 7,
    topic: str = "claims.claim-reversed.v1",
    value: bytes = b'{"claim_id": "x"}',
    detail: str = "payee_kind: Extra inputs are not permitted",
    headers: list[tuple[str, bytes]] | None = None,
) -> OutgoingRecord:
    original = original_headers(offset) if headers is None else headers
    source = SourceRecord(topic, 2, offset, b"holder-1", value, original)
    return dead_letter_record(DeadLetter(source, reason, detail), consumer)


def _letter(record: OutgoingRecord) -> Letter:
    letter = letter_of(record.key, record.payload, record.headers)
    assert letter is not None
    return letter


safe_text = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF), max_size=40)


@given(
    reason=st.sampled_from(list(DeadLetterReason)),
    consumer=safe_text.filter(bool),
    topic=safe_text.filter(bool),
    partition=st.integers(0, 1000),
    offset=st.integers(0, 2**62),
    value=st.binary(max_size=300),
    headers=st.lists(
        st.tuples(safe_text.filter(lambda k: not k.startswith("dlq_")), st.binary(max_size=20)),
        max_size=5,
    ),
    detail=safe_text,
)
def test_a_dead_letter_reads_back_as_it_was_written(
    reason: DeadLetterReason,
    consumer: str,
    topic: str,
    partition: int,
    offset: int,
    value: bytes,
    headers: list[tuple[str, bytes]],
    detail: str,
) -> None:
    source = SourceRecord(topic, partition, offset, b"k", value, headers)
    record = dead_letter_record(DeadLetter(source, reason, detail), consumer)
    letter = _letter(record)
    assert (letter.consumer, letter.reason, letter.detail) == (consumer, reason.value, detail)
    assert letter.source == (topic, partition, offset)
    assert (letter.key, letter.headers) == (b"k", headers)  # the original's, dlq_* left out
    assert letter.value == value or (letter.truncated and value.startswith(letter.value))
    assert letter.at is not None and letter.at.tzinfo is not None


def test_a_record_without_a_reason_or_source_is_not_a_dead_letter() -> None:
    assert letter_of(b"k", b"{}", ORIGINAL_HEADERS) is None
    assert letter_of(b"k", b"{}", [("dlq_reason", b"schema_violation")]) is None
    broken = [("dlq_reason", b"x"), ("dlq_source_topic", b"t")]
    broken += [("dlq_source_partition", b"one"), ("dlq_source_offset", b"1")]
    assert letter_of(b"k", b"{}", broken) is None


def test_the_summary_groups_by_consumer_reason_and_topic_largest_first() -> None:
    letters = [
        _letter(_dead(DeadLetterReason.SCHEMA_VIOLATION, offset=n, detail=f"detail {n}"))
        for n in range(3)
    ]
    letters.append(_letter(_dead(DeadLetterReason.BAD_SIGNATURE, consumer="claims-checkins")))
    letters.append(_letter(_dead(DeadLetterReason.SCHEMA_VIOLATION, consumer="cards-usage")))
    groups = summarise(letters)
    assert [(g.consumer, g.reason, g.count, g.redrivable) for g in groups] == [
        ("notifications", "schema_violation", 3, True),
        ("cards-usage", "schema_violation", 1, True),
        ("claims-checkins", "bad_signature", 1, False),
    ]
    first = groups[0]
    assert first.first_at is not None and first.last_at is not None
    assert first.first_at <= first.last_at <= datetime.now(UTC)
    assert first.detail == "detail 2"  # the latest


def test_a_redrive_sends_each_original_once_and_says_what_it_leaves_and_why() -> None:
    letters = [
        _letter(_dead(DeadLetterReason.SCHEMA_VIOLATION, offset=1)),
        # The same message, refused by a second consumer: one copy reaches both.
        _letter(_dead(DeadLetterReason.SCHEMA_VIOLATION, offset=1, consumer="cards-usage")),
        _letter(_dead(DeadLetterReason.HANDLER_ERROR, offset=2)),
        _letter(_dead(DeadLetterReason.BAD_SIGNATURE, offset=3)),
        _letter(_dead(DeadLetterReason.OVERSIZED, offset=4, value=b"x" * 70_000)),
    ]
    plan = plan_redrive(letters, reasons=[r.value for r in DeadLetterReason])
    assert [(r.topic, r.key, r.payload, r.headers) for r in plan.records] == [
        ("claims.claim-reversed.v1", b"holder-1", b'{"claim_id": "x"}', original_headers(n))
        for n in (1, 2)
    ]
    assert len({r.event_id for r in plan.records}) == 2
    assert plan.left == {
        "the same message as another dead letter": 1,
        "bad_signature: about the message itself, it would be refused again": 1,
        "oversized: about the message itself, it would be refused again": 1,
    }


def test_by_default_only_what_a_consumer_may_now_accept_and_filters_narrow_it() -> None:
    letters = [
        _letter(_dead(DeadLetterReason.SCHEMA_VIOLATION, offset=1)),
        _letter(_dead(DeadLetterReason.UNKNOWN_VERSION, offset=2, consumer="cards-usage")),
        _letter(_dead(DeadLetterReason.REPLAYED, offset=3)),
        _letter(_dead(DeadLetterReason.HANDLER_ERROR, offset=4, topic="cards.card-issued.v1")),
    ]
    assert len(plan_redrive(letters).records) == 3
    # Not chosen by default, and named with its reason: the operator learns why.
    assert plan_redrive(letters).left == {
        "replayed: about the message itself, it would be refused again": 1
    }
    only_cards = plan_redrive(letters, consumers=["cards-usage"])
    assert [r.payload for r in only_cards.records] == [b'{"claim_id": "x"}']
    assert plan_redrive(letters, source_topic="cards.card-issued.v1").left == {"not chosen": 3}
    assert plan_redrive(letters, reasons=["unknown_version"]).left == {"not chosen": 3}


def test_a_message_sent_back_and_refused_again_is_sent_back_once_more_not_twice() -> None:
    # The first redrive's copy is a new record (offset 40) of the same event (its ce_id):
    # both dead letters hold the one message, and one copy is enough.
    first = _letter(_dead(DeadLetterReason.SCHEMA_VIOLATION, offset=4))
    again = _letter(
        _dead(DeadLetterReason.SCHEMA_VIOLATION, offset=40, headers=original_headers(4))
    )
    other = _letter(_dead(DeadLetterReason.SCHEMA_VIOLATION, offset=5))
    plan = plan_redrive([first, again, other])
    assert [r.headers for r in plan.records] == [original_headers(4), original_headers(5)]
    assert plan.left == {"the same message as another dead letter": 1}
    # Without an event id, only the source tells messages apart.
    bare = [_letter(_dead(DeadLetterReason.HANDLER_ERROR, offset=n, headers=[])) for n in (1, 2)]
    assert len(plan_redrive(bare).records) == 2


def test_times_without_a_zone_are_taken_as_utc_and_sum_up_with_the_others() -> None:
    ours = _dead(DeadLetterReason.SCHEMA_VIOLATION, offset=1)
    foreign = [(k, b"2020-01-01T09:00:00" if k == "dlq_at" else v) for k, v in ours.headers]
    letters = [_letter(ours), _letter(_dead(DeadLetterReason.SCHEMA_VIOLATION, offset=2))]
    odd = letter_of(ours.key, ours.payload, foreign)
    assert odd is not None and odd.at == datetime(2020, 1, 1, 9, tzinfo=UTC)
    [group] = summarise([*letters, odd])
    assert group.count == 3 and group.first_at == odd.at


NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@given(st.integers(0, 999_999), st.sampled_from(sorted(UNITS)), st.sampled_from(["", " "]))
def test_since_a_time_ago(amount: int, unit: str, space: str) -> None:
    given = f"{amount}{space}{unit}"
    try:
        expected = NOW - timedelta(**{UNITS[unit]: amount})
    except OverflowError:  # before the year 1
        with pytest.raises(ValueError, match="further back than the calendar goes"):
            parse_since(given, NOW)
        return
    assert parse_since(given, NOW) == expected


@given(st.datetimes(timezones=st.timezones()))
def test_since_a_moment_with_its_zone(moment: datetime) -> None:
    # As instants: a moment in a zone's clock change compares unequal to itself across zones.
    assert parse_since(moment.isoformat(), NOW).astimezone(UTC) == moment.astimezone(UTC)


def test_since_a_moment_without_a_zone_is_local_time() -> None:
    assert parse_since("2026-07-01T02:00", NOW) == datetime(2026, 7, 1, 0, 0, tzinfo=UTC)  # CEST
    assert parse_since("2026-11-28", NOW) == datetime(2026, 11, 27, 23, 0, tzinfo=UTC)  # CET


@given(st.text(max_size=20).filter(lambda t: not t.strip()[:1].isdigit()))
def test_since_anything_else_is_refused_saying_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match="expected a time ago"):
        parse_since(text, NOW)


def test_since_keeps_the_letters_from_that_moment_on() -> None:
    letters = [
        replace(_letter(_dead(DeadLetterReason.HANDLER_ERROR, offset=n)), at=at)
        for n, at in enumerate([NOW - timedelta(hours=3), NOW - timedelta(hours=1), NOW, None])
    ]
    since = NOW - timedelta(hours=1)
    assert [x.source_offset for x in dead_lettered_since(letters, since)] == [1, 2]
    assert dead_lettered_since(letters, None) == letters  # a letter without a time, too
