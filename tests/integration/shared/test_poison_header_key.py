"""A record whose header key is not UTF-8 once stopped every consumer of its partition for
good: aiokafka raised UnicodeDecodeError from `getmany` on every fetch, and the records
fetched with it were lost from that call (shared/fetch_guard.py). On the real broker, a
plain consumer in a process that uses shared.kafka now gets every record, once, in order,
the key's bytes kept. (That a service dead-letters it: test_delivery_plumbing.py.)"""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer

from shared.envelope import key_bytes
from shared.kafka import ensure_topics
from tests.support.components import Infra
from tests.support.kafka import produce_raw_batch

pytestmark = pytest.mark.integration


async def test_a_consumer_gets_past_a_record_whose_header_key_is_not_utf8(infra: Infra) -> None:
    topic = f"test.poison-header-{uuid.uuid4().hex[:8]}"
    await ensure_topics(infra.bootstrap_servers, [topic], partitions=1)
    await produce_raw_batch(
        infra.bootstrap_servers,
        topic,
        [(b"before", [(b"ok", b"1")]), (b"poison", [(b"\xff\xfe", b"1")]), (b"after", [])],
    )
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=infra.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        got = []
        for _ in range(5):
            for records in (await consumer.getmany(timeout_ms=2_000)).values():
                got += [(r.value, [key_bytes(k) for k, _ in r.headers]) for r in records]
            if len(got) >= 3:
                break
        assert got == [(b"before", [b"ok"]), (b"poison", [b"\xff\xfe"]), (b"after", [])]
    finally:
        await consumer.stop()
