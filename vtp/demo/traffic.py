"""Simulated devices at work: valid check-ins, and the duplicates and invalid messages that
real networks and real attackers produce."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer

from shared import topics
from shared.envelope import Envelope
from shared.events.checkins import CheckInRecorded
from shared.kafka import make_producer
from vtp.demo.seed import Seeded

UNKNOWN_CARD = "6299000000002"  # valid Luhn, never issued


@dataclass
class TrafficReport:
    emitted: int = 0
    distinct_ids: set[str] = field(default_factory=set)
    duplicates: int = 0
    malformed: int = 0
    forged: int = 0
    from_the_future: int = 0
    unknown_card: int = 0

    @property
    def distinct(self) -> int:
        return len(self.distinct_ids)


async def emit_checkins(
    bootstrap_servers: str,
    seeded: Seeded,
    count: int,
    rng: random.Random,
    progress: Callable[[int], None] | None = None,
) -> TrafficReport:
    """Emit `count` messages in all: about 5 % duplicates and 4 % invalid ones."""
    report = TrafficReport()
    producer = make_producer(bootstrap_servers, client_id="vtp-demo-devices")
    await producer.start()
    sent: list[tuple[Envelope, CheckInRecorded]] = []
    try:
        while report.emitted < count:
            roll = rng.random()
            if roll < 0.05 and sent:
                envelope, checkin = rng.choice(sent)  # the network delivered it twice
                report.duplicates += 1
                await _send(
                    producer, envelope, checkin.model_dump_json().encode(), checkin.card_number
                )
            elif roll < 0.06:
                report.malformed += 1
                await _send_raw(producer, b'{"checkin_id": "broken', b"6299")
            else:
                envelope, checkin, kind = _checkin(seeded, rng, roll)
                body = checkin.model_dump_json().encode()
                if kind == "forged":
                    tampered = json.loads(body)
                    tampered["price_cents"] = checkin.price_cents * 10
                    body = json.dumps(tampered).encode()
                    report.forged += 1
                elif kind == "future":
                    report.from_the_future += 1
                elif kind == "unknown":
                    report.unknown_card += 1
                report.distinct_ids.add(str(checkin.checkin_id))
                if kind == "valid":
                    sent.append((envelope, checkin))
                await _send(producer, envelope, body, checkin.card_number)
            report.emitted += 1
            if progress is not None:
                progress(1)
        await producer.flush()
    finally:
        await producer.stop()
    return report


def _checkin(
    seeded: Seeded, rng: random.Random, roll: float
) -> tuple[Envelope, CheckInRecorded, str]:
    device = rng.choice(seeded.devices)
    activity, price = rng.choice(device.activities)
    kind = "valid"
    card = rng.choice(seeded.card_numbers)
    occurred = datetime.now(UTC) - timedelta(minutes=rng.randint(0, 60 * 24 * 3))
    if roll < 0.07:
        kind = "forged"
    elif roll < 0.08:
        kind, occurred = "future", datetime.now(UTC) + timedelta(days=2)
    elif roll < 0.09:
        kind, card = "unknown", UNKNOWN_CARD
    envelope, checkin = device.identity.check_in(
        card_number=card, activity=activity, price_cents=price, occurred_at=occurred
    )
    return envelope, checkin, kind


async def _send(producer: AIOKafkaProducer, envelope: Envelope, body: bytes, key: str) -> None:
    await producer.send(
        topics.CHECKIN_RECORDED.name, value=body, key=key.encode(), headers=envelope.headers()
    )


async def _send_raw(producer: AIOKafkaProducer, body: bytes, key: bytes) -> None:
    headers = [("ce_specversion", b"1.0"), ("ce_type", topics.CHECKIN_RECORDED.event_type.encode())]
    await producer.send(topics.CHECKIN_RECORDED.name, value=body, key=key, headers=headers)
