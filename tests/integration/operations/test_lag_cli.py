"""`vtp lag` on the real broker: what each consumer group has still to process, counted to
the true end of a topic whose last record batch holds several records."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from typer.testing import CliRunner

from shared.kafka import ensure_topics
from tests.support.components import Infra
from vtp.operations.lag_cli import lag_command

pytestmark = pytest.mark.integration

lag_app = typer.Typer()
lag_app.command()(lag_command)


async def _write(bootstrap: str, topic: str, partition: int, *batches: int) -> None:
    """Records on one partition, in record batches of the given sizes."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for size in batches:
            batch = producer.create_batch()
            for n in range(size):
                batch.append(key=None, value=b"%d" % n, timestamp=None)
            batch.close()
            await (await producer.send_batch(batch, topic, partition=partition))
    finally:
        await producer.stop()


async def _commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


def _lag(infra: Infra, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(lag_app, [*args, "--bootstrap-servers", infra.bootstrap_servers])
    return result.exit_code, result.stdout, result.stderr


def test_an_operator_sees_how_far_each_consumer_group_is_behind(infra: Infra) -> None:
    topic = f"test.lag-{uuid.uuid4().hex[:8]}.v1"
    behind, caught_up = (
        f"test-lag-behind-{uuid.uuid4().hex[:6]}",
        f"test-lag-up-{uuid.uuid4().hex[:6]}",
    )
    asyncio.run(ensure_topics(infra.bootstrap_servers, [topic], partitions=2))
    asyncio.run(_write(infra.bootstrap_servers, topic, 0, 3, 4))  # the end is 7, not 4
    asyncio.run(_write(infra.bootstrap_servers, topic, 1, 3))
    p0, p1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
    asyncio.run(_commit(infra.bootstrap_servers, behind, {p0: 2}))  # p1 never committed
    asyncio.run(_commit(infra.bootstrap_servers, caught_up, {p0: 7, p1: 3}))

    code, out, _ = _lag(infra, "--topic", topic, "--json")
    assert code == 0
    mine = {row["group"]: row for row in json.loads(out) if row["group"] in (behind, caught_up)}
    assert mine == {
        behind: {
            "group": behind,
            "topic": topic,
            "behind": 5 + 3,
            "partitions_behind": 2,
            "partitions": 2,
        },
        caught_up: {
            "group": caught_up,
            "topic": topic,
            "behind": 0,
            "partitions_behind": 0,
            "partitions": 2,
        },
    }

    # A monitoring check: over the limit exits 1 and names the group; at it, all is well.
    code, _, err = _lag(infra, "--topic", topic, "--group", behind, "--alert-above", "7")
    assert code == 1
    assert f"{behind} is 8 record(s) behind on {topic}" in err
    code, _, err = _lag(infra, "--topic", topic, "--group", behind, "--alert-above", "8")
    assert code == 0
    assert "8 record(s) waiting in all" in err
