"""The relay's sender hands records over per partition: every record arrives once, in its
order, with its headers, on the partition any producer would choose for its key."""

from __future__ import annotations

import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from shared.kafka import KafkaSender, RecordsRefused, caught_up, ensure_topics, make_reader
from shared.outbox import OutgoingRecord
from tests.support.components import Infra
from tests.support.kafka import read_topic

pytestmark = pytest.mark.integration


async def test_records_arrive_once_in_order_on_the_partition_of_their_key(infra: Infra) -> None:
    suffix = uuid.uuid4().hex[:8]
    batched, plain = f"test.sender-batched-{suffix}.v1", f"test.sender-plain-{suffix}.v1"
    other = f"test.sender-other-{suffix}.v1"
    await ensure_topics(infra.bootstrap_servers, [batched, plain, other], partitions=4)
    keys = [f"card-{i}".encode() for i in range(12)]
    records = [
        OutgoingRecord(
            str(uuid.uuid4()),
            batched if n % 5 else other,  # two topics in one call
            keys[n % len(keys)],
            [("seq", str(n).encode())],
            b"x" * 300,  # several record batches per partition at the small batch size
        )
        for n in range(400)
    ]
    # A small batch size, so that a partition's records need several batches.
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers, max_batch_size=4096)
    await producer.start()
    try:
        await KafkaSender(producer).send_all(records)
        for key in keys:  # the same keys through the producer's ordinary path
            await producer.send_and_wait(plain, value=b"p", key=key)
    finally:
        await producer.stop()

    expected_partition = {
        r.key: r.partition for r in await read_topic(infra.bootstrap_servers, plain)
    }
    got = await read_topic(infra.bootstrap_servers, batched)
    got += await read_topic(infra.bootstrap_servers, other)
    assert len(got) == len(records)
    sequences_per_key: dict[bytes, list[int]] = defaultdict(list)
    for r in sorted(got, key=lambda r: (r.topic, r.partition, r.offset)):
        assert r.partition == expected_partition[r.key]
        sequences_per_key[r.key].append(int(dict(r.headers)["seq"]))
    for key, sequences in sequences_per_key.items():
        by_topic_order = [n for n in range(400) if keys[n % len(keys)] == key]
        # Within a topic and key the order is kept; across the two topics it need not be.
        assert sorted(sequences) == by_topic_order
        batched_only = [n for n in sequences if n % 5]
        assert batched_only == sorted(batched_only)


async def test_a_record_over_the_limit_is_refused_by_name_and_nothing_of_it_goes_out(
    infra: Infra,
) -> None:
    topic = f"test.sender-limit-{uuid.uuid4().hex[:8]}.v1"
    await ensure_topics(infra.bootstrap_servers, [topic], partitions=1)

    def record(n: int, size: int) -> OutgoingRecord:
        return OutgoingRecord(str(uuid.uuid4()), topic, b"k", [("n", b"%d" % n)], b"x" * size)

    small, large = record(0, 900), record(1, 1200)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await producer.start()
    try:
        sender = KafkaSender(producer, max_record_bytes=1000)
        with pytest.raises(RecordsRefused) as refused:
            await sender.send_all([small, large])
        await sender.send_all([small])  # at the limit's side of it: taken
    finally:
        await producer.stop()
    assert refused.value.records == [large]
    assert refused.value.reason.endswith("bytes, more than the 1000 a record may have")
    assert int(refused.value.reason.split()[0]) > 1200  # key, header and framing counted
    assert [r.value for r in await read_topic(infra.bootstrap_servers, topic, idle_s=1)] == [
        small.payload
    ]


async def test_a_reader_is_caught_up_only_at_the_end_of_the_last_record_batch(
    infra: Infra,
) -> None:
    topic = f"test.caught-up-{uuid.uuid4().hex[:8]}.v1"
    await ensure_topics(infra.bootstrap_servers, [topic], partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await producer.start()
    try:
        for batch in (4, 3):  # two record batches; the embedded broker's ListOffsets names 5
            sender = KafkaSender(producer)
            await sender.send_all(
                [OutgoingRecord(str(uuid.uuid4()), topic, b"k", [], b"v") for _ in range(batch)]
            )
    finally:
        await producer.stop()

    consumer = make_reader(infra.bootstrap_servers, client_id="test-caught-up")
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])  # from the beginning
        assert not await caught_up(consumer)  # nothing read yet, whatever the broker said
        read = 0
        while read < 7:
            records = await consumer.getmany(tp, timeout_ms=10_000, max_records=1)
            assert records, "the broker did not answer in 10 s"
            read += 1
            assert await caught_up(consumer) == (read == 7), f"after {read} of 7"
    finally:
        await consumer.stop()
