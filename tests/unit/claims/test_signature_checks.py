"""Signature checks started before a batch's facts are read: a result counts only under
the key the facts give, whatever the key remembered from earlier batches."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.claims import signatures
from services.claims.authentication import ReplacedKey, signed_before_rotation
from services.claims.signatures import CHECKS_PER_TURN, SignatureChecks
from shared.checkin_signature import public_key_b64, verify
from shared.events.checkins import Activity, ActivityCategory, CheckInRecorded
from vtp.device.signer import DeviceIdentity

DEVICE_ID, PROVIDER_ID = uuid.uuid4(), uuid.uuid4()
OLD_KEY, NEW_KEY = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
OLD, NEW = public_key_b64(OLD_KEY), public_key_b64(NEW_KEY)


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The messages verified, in order."""
    seen: list[bytes] = []

    def counting(key: str, message: bytes, signature: str) -> bool:
        seen.append(message)
        return verify(key, message, signature)

    monkeypatch.setattr(signatures, "verify", counting)
    return seen


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


async def _checked(checks: SignatureChecks, batch: list[CheckInRecorded], key: str) -> list[bool]:
    checks.start(batch)
    return await checks.results(batch, {DEVICE_ID: key})


@pytest.mark.parametrize("count", [1, CHECKS_PER_TURN * 2 + 7])
async def test_genuine_and_tampered_signatures_are_told_apart(count: int) -> None:
    genuine = _checkins(OLD_KEY, count)
    tampered = [c.model_copy(update={"price_cents": c.price_cents + 1}) for c in genuine]
    checks = SignatureChecks()
    await _checked(checks, _checkins(OLD_KEY, 1), OLD)  # now the key is remembered
    assert await _checked(checks, [*genuine, *tampered], OLD) == [True] * count + [False] * count


async def test_checks_run_while_the_batch_waits_and_each_only_once(verified: list[bytes]) -> None:
    checks = SignatureChecks()
    await _checked(checks, _checkins(OLD_KEY, 1), OLD)
    assert len(verified) == 1  # unknown key at first: checked once the facts gave it

    batch = _checkins(OLD_KEY, CHECKS_PER_TURN * 3)
    checks.start(batch)
    assert len(verified) == 1  # started, not run: the caller goes on to its database reads
    await asyncio.sleep(0)  # a database round trip, say
    assert len(verified) == 1 + CHECKS_PER_TURN  # a turn's worth, then it yields
    checks.start(batch)  # the handler's own start, after prepare() started them
    assert await checks.results(batch, {DEVICE_ID: OLD}) == [True] * len(batch)
    assert len(verified) == 1 + len(batch)


@pytest.mark.parametrize("count", [3, CHECKS_PER_TURN + 1])
async def test_a_device_registered_again_is_checked_with_its_new_key(count: int) -> None:
    checks = SignatureChecks()
    await _checked(checks, _checkins(OLD_KEY, 1), OLD)
    both = [*_checkins(NEW_KEY, count), *_checkins(OLD_KEY, count)]
    # Started with the remembered old key; the facts then say the key is the new one.
    assert await _checked(checks, both, NEW) == [True] * count + [False] * count
    # And the other way round: a stale early result under the new key does not count.
    assert await _checked(checks, both, OLD) == [False] * count + [True] * count


async def test_a_device_without_a_key_never_passes() -> None:
    checks = SignatureChecks()
    await _checked(checks, _checkins(OLD_KEY, 1), OLD)
    batch = _checkins(OLD_KEY, 2)
    checks.start(batch)
    assert await checks.results(batch, {}) == [False, False]


async def test_the_batch_read_ahead_keeps_its_checks_older_ones_are_dropped(
    verified: list[bytes],
) -> None:
    checks = SignatureChecks()
    await _checked(checks, _checkins(OLD_KEY, 1), OLD)
    never_asked = _checkins(OLD_KEY, CHECKS_PER_TURN * 4)  # all duplicates, say
    checks.start(never_asked)
    current, ahead = _checkins(OLD_KEY, 2), _checkins(OLD_KEY, 3)
    checks.start(current)
    checks.start(ahead)  # read ahead while `current` is in its transaction
    assert await checks.results(current, {DEVICE_ID: OLD}) == [True, True]
    assert await checks.results(ahead, {DEVICE_ID: OLD}) == [True] * 3
    await asyncio.sleep(0)
    assert len(verified) == 1 + 2 + 3  # each checked once; the abandoned ones never ran
    assert not checks._started


async def test_checks_the_handler_starts_do_not_push_out_the_batch_read_ahead(
    verified: list[bytes],
) -> None:
    checks = SignatureChecks()
    batches = [_checkins(OLD_KEY, 3) for _ in range(6)]
    checks.start(batches[0])  # the first batch, and the one read ahead: no key known yet
    checks.start(batches[1])
    assert await _checked(checks, batches[0], OLD) == [True] * 3
    for n in range(1, 5):
        checks.start(batches[n + 1])  # read ahead while batch n is in its transaction
        # The handler's own start: batch n's checks, if they were dropped, start again.
        assert await _checked(checks, batches[n], OLD) == [True] * 3
    assert len(verified) == len(set(verified))  # no check-in checked twice
    assert len(set(verified)) >= 15  # batches 0 to 4 (5, read ahead, may have run too)


def test_a_replaced_key_counts_only_for_what_reached_the_broker_before_its_replacement() -> None:
    [checkin] = _checkins(OLD_KEY, 1)
    rotated = datetime(2026, 5, 2, 10, 0, tzinfo=UTC)
    replaced = [ReplacedKey(NEW, datetime(2026, 5, 3, tzinfo=UTC)), ReplacedKey(OLD, rotated)]
    assert signed_before_rotation(checkin, replaced, rotated - timedelta(milliseconds=1))
    assert not signed_before_rotation(checkin, replaced, rotated)
    # Another key replaced later does not make a signature it did not make count.
    assert not signed_before_rotation(checkin, replaced[:1], rotated - timedelta(days=1))
    assert not signed_before_rotation(checkin, [], rotated - timedelta(days=1))
