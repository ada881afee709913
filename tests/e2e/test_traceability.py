"""Operators follow one check-in through every service by its correlation id, and the logs
never carry a card holder's name, national number or IBAN."""

from __future__ import annotations

import asyncio
import json
import random
import re
from pathlib import Path

import httpx
import pytest

from tests.support.checkins import make_checkins, seed_stack, send, started_producer, wait_stats
from vtp.demo.municipality import FIRST_NAMES, LAST_NAMES
from vtp.devstack.stack import Stack

pytestmark = pytest.mark.e2e

# Independent of the redaction code: anything that looks like an IBAN or a national number.
_IBAN = re.compile(r"\bBE\d{2}\s?\d{4}\s?\d{4}\s?\d{4}\b")
_NATIONAL_NUMBER = re.compile(r"\b\d{2}\.?\d{2}\.?\d{2}-?\d{3}\.?\d{2}\b")


def _lines(log_dir: Path, service: str) -> list[dict[str, object]]:
    out = []
    for path in log_dir.glob(f"{service}*.log"):
        for line in path.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
    return out


async def _wait_for_line(log_dir: Path, service: str, correlation_id: str, event: str) -> None:
    for _ in range(120):
        if any(
            line.get("correlation_id") == correlation_id and line.get("event") == event
            for line in _lines(log_dir, service)
        ):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"{service} never logged {event!r} for {correlation_id}")


async def test_one_check_in_is_traceable_from_device_to_payment_in_all_services(
    stack: Stack,
) -> None:
    seeded = await seed_stack(stack, holders=3, seed_value=21)
    # A refund-mode provider (the first), so the card holder is the payee.
    device = seeded.devices[0]
    seeded.devices = [device]
    envelope, checkin = make_checkins(seeded, 1, random.Random(1))[0]
    correlation_id = envelope.correlation_id
    producer = await started_producer(stack)
    try:
        await send(producer, envelope, checkin)
        await producer.flush()
    finally:
        await producer.stop()
    await wait_stats(stack, lambda s: s["approved"] >= 1, "the claim")
    async with httpx.AsyncClient(timeout=30, headers=stack.operations_headers()) as client:
        (await client.post(f"{stack.url('claims')}/payment-runs")).raise_for_status()

    await _wait_for_line(stack.log_dir, "claims", correlation_id, "claim decided")
    await _wait_for_line(
        stack.log_dir, "claims", correlation_id, "claim included in payment request"
    )
    await _wait_for_line(stack.log_dir, "cards", correlation_id, "card use recorded")
    await _wait_for_line(stack.log_dir, "notifications", correlation_id, "notification sent")

    everything = "\n".join(
        p.read_text()
        for p in stack.log_dir.glob("*.log")
        if p.name.split(".")[0].split("-")[0] in ("cards", "claims", "notifications")
    )
    assert not _IBAN.search(everything)
    assert not _NATIONAL_NUMBER.search(everything)
    for name in (*LAST_NAMES, *(f"{f} " for f in FIRST_NAMES)):
        assert name not in everything, name


def test_every_service_says_at_start_which_event_loop_it_runs_on(stack: Stack) -> None:
    # uvloop is a dependency wherever it exists; a service that silently fell back to the
    # slower standard loop would only show as a slower benchmark.
    for service in ("cards", "claims", "notifications"):
        started = [
            line
            for line in _lines(stack.log_dir, service)
            if line.get("event") == "service started"
        ]
        assert started, f"{service} logged no start"
        assert {line.get("event_loop") for line in started} == {"uvloop"}, service
