"""Driving a running stack the way devices do: signed check-ins straight onto the topic."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

from shared import topics
from shared.envelope import Envelope
from shared.events.checkins import CheckInRecorded
from shared.kafka import make_producer
from vtp.demo.seed import Seeded, seed
from vtp.devstack.stack import Stack


async def seed_stack(stack: Stack, holders: int, seed_value: int = 7) -> Seeded:
    seeded = await seed(
        stack.url("cards"), holders, random.Random(seed_value), token=stack.keys["api_token_secret"]
    )
    await wait_stats(
        stack,
        lambda s: s["known_cards"] >= holders and s["known_devices"] >= len(seeded.devices),
        "claims to learn the cards",
    )
    return seeded


def make_checkins(
    seeded: Seeded, count: int, rng: random.Random
) -> list[tuple[Envelope, CheckInRecorded]]:
    """Valid, distinct check-ins (spread over the last days so few hit the daily limit)."""
    out = []
    for _ in range(count):
        device = rng.choice(seeded.devices)
        activity, price = rng.choice(device.activities)
        out.append(
            device.identity.check_in(
                card_number=rng.choice(seeded.card_numbers),
                activity=activity,
                price_cents=price,
                occurred_at=datetime.now(UTC) - timedelta(minutes=rng.randint(0, 60 * 24 * 5)),
            )
        )
    return out


async def send(producer: AIOKafkaProducer, envelope: Envelope, checkin: CheckInRecorded) -> None:
    await producer.send(
        topics.CHECKIN_RECORDED.name,
        value=checkin.model_dump_json().encode(),
        key=checkin.card_number.encode(),
        headers=envelope.headers(),
    )


async def started_producer(stack: Stack) -> AIOKafkaProducer:
    producer = make_producer(stack.bootstrap_servers, client_id="test-devices")
    await producer.start()
    return producer


async def stats(stack: Stack) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10, headers=stack.operations_headers()) as client:
        response = await client.get(f"{stack.url('claims')}/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


async def wait_stats(stack: Stack, done: Any, what: str, timeout_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            last = await stats(stack)
            if done(last):
                return last
        except httpx.HTTPError:
            pass  # the service may be restarting
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; last stats: {last}")
