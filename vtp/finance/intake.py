"""Reading the payment requests from Kafka as finance's own consumer group.

At-least-once with exactly-once effect in the local book: records are decoded and stored
(INSERT OR IGNORE on the payment id), the SQLite commit happens, and only then are the
Kafka offsets committed. A record that cannot be decoded is dead-lettered (consumer
`finance`) before its offset is committed: past the commit, nothing else would remember
that money waits to be paid, and `vtp deadletters redrive` sends it back once finance can
read it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from shared import topics
from shared.consumer import decode
from shared.deadletter import DeadLetter, SourceRecord, dead_letter_record
from shared.events.payments import PaymentRequested
from shared.kafka import KafkaSender, caught_up, make_producer
from vtp.finance.book import PaymentBook

GROUP_ID = "finance"


@dataclass
class IntakeReport:
    received: int = 0
    new: int = 0
    undecodable: int = 0


async def take_in(
    bootstrap_servers: str, book: PaymentBook, *, idle_s: float = 3.0, timeout_s: float = 120.0
) -> IntakeReport:
    """Consume every payment request not yet consumed by the finance group, until quiet."""
    consumer = AIOKafkaConsumer(
        topics.PAYMENT_REQUESTED.name,
        bootstrap_servers=bootstrap_servers,
        group_id=GROUP_ID,
        client_id="vtp-finance",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        request_timeout_ms=30_000,
    )
    producer = make_producer(bootstrap_servers, client_id="vtp-finance")
    report = IntakeReport()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    quiet_since = loop.time()
    known = {topics.PAYMENT_REQUESTED.name: topics.PAYMENT_REQUESTED}
    try:
        await consumer.start()  # in the try: a broker away must not leave it unclosed
        await producer.start()
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=300, max_records=500)
            records = [r for rs in batch.values() for r in rs]
            if not records:
                # Quiet counts only once every partition is read to its end: joining a fresh
                # group, or a busy broker's next answer, can take longer than `idle_s`.
                if not await caught_up(consumer):
                    quiet_since = loop.time()
                elif loop.time() - quiet_since > idle_s:
                    break
                continue
            quiet_since = loop.time()
            events: list[PaymentRequested] = []
            dead: list[DeadLetter] = []
            for r in records:
                source = SourceRecord(
                    r.topic, r.partition, r.offset, r.key, r.value, list(r.headers or ())
                )
                decoded = decode(source, known)
                if isinstance(decoded, DeadLetter):
                    dead.append(decoded)
                else:
                    events.append(decoded.payload)
            with book.transaction():
                report.new += book.add_requested(events)
            await KafkaSender(producer).send_all([dead_letter_record(d, GROUP_ID) for d in dead])
            report.undecodable += len(dead)
            report.received += len(records)
            await consumer.commit()  # after the local commit: a crash re-reads, never loses
    finally:
        await consumer.stop()
        await producer.stop()
    return report
