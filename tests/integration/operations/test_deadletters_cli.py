"""`vtp deadletters` on the real broker: the list an operator reads, and a re-drive that
puts each chosen original back on its topic once, as it was before it was dead-lettered."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import TopicPartition
from typer.testing import CliRunner

from shared.deadletter import DeadLetter, DeadLetterReason, SourceRecord, dead_letter_record
from shared.kafka import KafkaSender, ensure_topics, make_producer, make_reader
from shared.outbox import OutgoingRecord
from shared.topics import DEAD_LETTER_TOPIC
from tests.support.components import Infra
from tests.support.kafka import read_topic
from vtp.locate import console
from vtp.operations.deadletters_cli import deadletters_app, first_written_at

pytestmark = pytest.mark.integration


def headers(offset: int) -> list[tuple[str, bytes]]:
    """A message's headers: each message its own event id."""
    return [("ce_id", b"4f1c-%d" % offset), ("ce_type", b"be.vtp.test.v1")]


async def _publish(bootstrap: str, records: list[OutgoingRecord]) -> None:
    producer = make_producer(bootstrap, client_id="test-deadletters")
    await producer.start()
    try:
        await KafkaSender(producer).send_all(records)
    finally:
        await producer.stop()


def _dead(topic: str, offset: int, reason: DeadLetterReason, consumer: str) -> OutgoingRecord:
    body = b'{"n": %d}' % offset
    source = SourceRecord(topic, 0, offset, b"key-%d" % offset, body, headers(offset))
    return dead_letter_record(
        DeadLetter(source, reason, "grants: Extra inputs are not permitted"), consumer
    )


def _dead_letters_from_a_topic_of_its_own(
    infra: Infra, *letters: tuple[int, DeadLetterReason, str]
) -> str:
    """Dead letters of messages from a new topic, whose name is returned: other tests
    dead-letter into the same dead-letter topic, a test looks at its own source topic."""
    topic = f"test.redrive-{uuid.uuid4().hex[:8]}.v1"
    asyncio.run(ensure_topics(infra.bootstrap_servers, [topic, DEAD_LETTER_TOPIC], partitions=1))
    records = [_dead(topic, offset, reason, consumer) for offset, reason, consumer in letters]
    asyncio.run(_publish(infra.bootstrap_servers, records))
    return topic


def _deadletters(infra: Infra, *args: str, output: str = "stdout") -> str:
    result = CliRunner().invoke(
        deadletters_app, [*args, "--bootstrap-servers", infra.bootstrap_servers]
    )
    assert result.exit_code == 0, result.output
    return str(getattr(result, output))


def test_an_operator_sees_the_dead_letters_and_sends_back_what_can_go(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = _dead_letters_from_a_topic_of_its_own(
        infra,
        (1, DeadLetterReason.SCHEMA_VIOLATION, "claims-cards"),
        (1, DeadLetterReason.SCHEMA_VIOLATION, "notifications"),
        (2, DeadLetterReason.SCHEMA_VIOLATION, "claims-cards"),
        (3, DeadLetterReason.BAD_SIGNATURE, "claims-checkins"),
    )
    listed = [g for g in json.loads(_deadletters(infra, "list", "--json"))]
    mine = {
        (g["consumer"], g["reason"]): (g["count"], g["redrivable"], g["latest_detail"])
        for g in listed
        if g["source_topic"] == topic
    }
    detail = "grants: Extra inputs are not permitted"
    assert mine == {
        ("claims-cards", "schema_violation"): (2, True, detail),
        ("notifications", "schema_violation"): (1, True, detail),
        ("claims-checkins", "bad_signature"): (1, False, detail),
    }

    # The table, for people: wide enough that no cell of the whole suite's letters wraps.
    monkeypatch.setattr(console, "width", 400)
    table = _deadletters(infra, "list", output="stderr")
    rows = [line for line in table.splitlines() if topic in line]
    assert len(rows) == 3
    assert any("claims-cards" in r and "schema_violation" in r and " 2 " in r for r in rows)
    assert any("bad_signature" in r and " no " in r for r in rows)

    # What came in since a moment: this test's letters are from the last hour, not later.
    recent = json.loads(_deadletters(infra, "list", "--since", "1h", "--json"))
    assert {(g["consumer"], g["reason"]) for g in recent if g["source_topic"] == topic} == set(mine)
    assert json.loads(_deadletters(infra, "list", "--since", "2099-01-01", "--json")) == []
    nothing = _deadletters(
        infra, "redrive", "--source-topic", topic, "--since", "2099-01-01", "--yes", output="stderr"
    )
    assert "nothing to send back" in nothing

    sent = json.loads(_deadletters(infra, "redrive", "--source-topic", topic, "--yes"))
    assert sent == {"sent": 2, "per_topic": {topic: 2}}
    back = asyncio.run(read_topic(infra.bootstrap_servers, topic, idle_s=1))
    assert sorted((r.key, r.value, list(r.headers)) for r in back) == [
        (b"key-1", b'{"n": 1}', headers(1)),  # once, though two consumers refused it
        (b"key-2", b'{"n": 2}', headers(2)),
    ]


def test_a_redrive_asks_before_it_sends(infra: Infra) -> None:
    topic = _dead_letters_from_a_topic_of_its_own(
        infra, (5, DeadLetterReason.HANDLER_ERROR, "notifications")
    )
    result = CliRunner().invoke(
        deadletters_app,
        ["redrive", "--source-topic", topic],
        input="n\n",
        env={"KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers},
    )
    assert result.exit_code == 1
    assert f"to send back: 1 message(s) to {topic}" in result.stderr
    assert asyncio.run(read_topic(infra.bootstrap_servers, topic, idle_s=1)) == []


async def test_a_look_since_a_moment_starts_at_the_first_record_written_after_it(
    infra: Infra,
) -> None:
    topic = f"test.since-{uuid.uuid4().hex[:8]}.v1"
    await ensure_topics(infra.bootstrap_servers, [topic], partitions=1)
    old = [OutgoingRecord(str(uuid.uuid4()), topic, b"k", [], b"old") for _ in range(3)]
    await _publish(infra.bootstrap_servers, old)
    await asyncio.sleep(1.1)  # the broker keeps record times in milliseconds
    moment = datetime.now(UTC)
    new = [OutgoingRecord(str(uuid.uuid4()), topic, b"k", [], b"new") for _ in range(2)]
    await _publish(infra.bootstrap_servers, new)

    reader = make_reader(infra.bootstrap_servers, client_id="test-since")
    await reader.start()
    try:
        tp = TopicPartition(topic, 0)
        assert await first_written_at(reader, [tp], moment) == {tp: 3}
        # Nothing written after it: from the end the broker names (here 4, inside the
        # last batch; what is read from there is dropped by its time).
        later = await first_written_at(reader, [tp], moment + timedelta(hours=1))
        assert 3 <= later[tp] <= 5
    finally:
        await reader.stop()
