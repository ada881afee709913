"""Signature checks started before a batch's facts are read: a result counts only under
the key the facts give, whatever the key remembered from earlier batches."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.claims.signatures import MIN_OFFLOADED, SignatureChecks
from shared.checkin_signature import public_key_b64
from shared.events.checkins import Activity, ActivityCategory, CheckInRecorded
from vtp.device.signer import DeviceIdentity

DEVICE_ID, PROVIDER_ID = uuid.uuid4(), uuid.uuid4()
OLD_KEY, NEW_KEY = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
OLD, NEW = public_key_b64(OLD_KEY), public_key_b64(NEW_KEY)


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(2)
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


def _checkins(key: Ed25519PrivateKey, count: int) -> list[CheckInRecorded]:
    identity = DeviceIdentity(DEVICE_ID, PROVIDER_ID, key)
    return [
        identity.check_in(
            card_number="6299001234568",
            activity=Activity(id="a", category=ActivityCategory.SPORT, name="A"),
            price_cents=700,
            occurred_at=datetime(2026, 5, 1, tzinfo=UTC),
        )[1]
        for _ in range(count)
    ]


@pytest.mark.parametrize("count", [1, MIN_OFFLOADED + 7])
async def test_genuine_and_tampered_signatures_are_told_apart(count: int) -> None:
    genuine = _checkins(OLD_KEY, count)
    tampered = [c.model_copy(update={"price_cents": c.price_cents + 1}) for c in genuine]
    checks = SignatureChecks(executor=CountingExecutor())
    assert await _checked(checks, [*genuine, *tampered], OLD) == [True] * count + [False] * count


async def test_batches_are_checked_on_worker_threads_before_the_facts_arrive() -> None:
    executor = CountingExecutor()
    checks = SignatureChecks(threads=2, executor=executor)
    await _checked(checks, _checkins(OLD_KEY, 1), OLD)
    assert executor.submitted == 0  # unknown key at first; one check-in is checked in place

    batch = _checkins(OLD_KEY, MIN_OFFLOADED)
    checks.start(batch)
    assert executor.submitted == 2  # the key is remembered: both halves under way already
    checks.start(batch)  # the handler's own start, after prepare() has started them
    assert await checks.results(batch, {DEVICE_ID: OLD}) == [True] * MIN_OFFLOADED
    assert executor.submitted == 2  # each checked once


@pytest.mark.parametrize("count", [3, MIN_OFFLOADED])
async def test_a_device_registered_again_is_checked_with_its_new_key(count: int) -> None:
    checks = SignatureChecks(executor=CountingExecutor())
    await _checked(checks, _checkins(OLD_KEY, 1), OLD)
    both = [*_checkins(NEW_KEY, count), *_checkins(OLD_KEY, count)]
    # Started with the remembered old key; the facts then say the key is the new one.
    assert await _checked(checks, both, NEW) == [True] * count + [False] * count
    # And the other way round: a stale early result under the new key does not count.
    assert await _checked(checks, both, OLD) == [False] * count + [True] * count


async def test_a_device_without_a_key_never_passes() -> None:
    checks = SignatureChecks(executor=CountingExecutor())
    await _checked(checks, _checkins(OLD_KEY, 1), OLD)
    batch = _checkins(OLD_KEY, 2)
    checks.start(batch)
    assert await checks.results(batch, {}) == [False, False]


async def test_checks_started_for_a_batch_that_never_reached_the_handler_are_dropped() -> None:
    checks = SignatureChecks(executor=CountingExecutor())
    await _checked(checks, _checkins(OLD_KEY, 1), OLD)
    checks.start(_checkins(OLD_KEY, 3))  # all duplicates, say: the handler never ran
    batch = _checkins(OLD_KEY, 2)
    assert await checks.results(batch, {DEVICE_ID: OLD}) == [True, True]
    assert not checks._started


async def _checked(checks: SignatureChecks, batch: list[CheckInRecorded], key: str) -> list[bool]:
    checks.start(batch)
    return await checks.results(batch, {DEVICE_ID: key})
