"""A cancellation counts only when signed by a known, non-revoked device of the provider it
names, and only for that provider's check-in: anything else is dead-lettered and the card
holder's refund stands (one from a device, or with a key, claims has not heard of yet waits
for it: test_parked_cancellations.py). A cancellation that overtakes its check-in applies only to a
check-in of its own provider, and another provider's, parked first, does not block it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.claims.cancellations import CancellationHandler
from services.claims.checkins import CheckInHandler
from shared.checkin_signature import public_key_b64
from shared.consumer import Incoming
from shared.deadletter import DeadLetter, DeadLetterReason
from shared.envelope import Envelope
from shared.events.checkins import CancellationReason, CheckInCancelled, CheckInRecorded
from tests.integration.claims import scenario
from tests.support.cancellations import signed_cancellation
from vtp.device.signer import DeviceIdentity

pytestmark = pytest.mark.integration


@dataclass
class Setting:
    pool: asyncpg.Pool
    world: scenario.World
    card: str
    checkin: Incoming[CheckInRecorded]

    @property
    def own(self) -> DeviceIdentity:  # a device of the check-in's provider
        return self.world.devices[0]

    @property
    def other(self) -> DeviceIdentity:  # a device of another provider
        return self.world.devices[1]

    def incoming(self, made: tuple[Envelope, CheckInCancelled]) -> Incoming[CheckInCancelled]:
        envelope, cancel = made
        return Incoming(envelope, cancel, self.world.record(envelope, cancel))

    def cancellation(self, device: DeviceIdentity, **kwargs: Any) -> Incoming[CheckInCancelled]:
        return self.incoming(
            signed_cancellation(
                device,
                checkin_id=self.checkin.payload.checkin_id,
                card_number=self.card,
                cancelled_at=scenario.NOW,
                **kwargs,
            )
        )

    async def check_in(self) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await CheckInHandler(scenario.policy(), lambda: scenario.NOW)(conn, [self.checkin])

    async def cancel(self, *cancellations: Incoming[CheckInCancelled]) -> list[DeadLetter]:
        async with self.pool.acquire() as conn, conn.transaction():
            return await CancellationHandler(scenario.policy())(conn, list(cancellations))

    async def claim(self) -> asyncpg.Record:
        async with self.pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT outcome, reason, detail, reversed_at, reversal_reason FROM claims"
                " WHERE checkin_id = $1",
                self.checkin.payload.checkin_id,
            )
        assert row is not None
        return row

    async def reversals(self) -> int:
        async with self.pool.acquire() as conn:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE topic = 'claims.claim-reversed.v1'"
            )
            return count


@pytest.fixture
async def setting(database: str) -> AsyncIterator[Setting]:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=2)
    try:
        await scenario.prepare(pool)
        world = await scenario.build_world(pool, holders=2)
        yield Setting(pool, world, world.card_numbers[1], world.senior_checkin())
    finally:
        await pool.close()


async def _approved_and_standing(setting: Setting) -> None:
    claim = await setting.claim()
    assert claim["outcome"] in ("approved", "capped")
    assert claim["reversed_at"] is None
    assert await setting.reversals() == 0


async def test_a_cancellation_signed_by_a_device_of_the_checkins_provider_reverses_it(
    setting: Setting,
) -> None:
    await setting.check_in()
    dead = await setting.cancel(
        setting.cancellation(setting.own, reason=CancellationReason.SCANNED_TWICE)
    )
    assert dead == []
    claim = await setting.claim()
    assert claim["reversed_at"] is not None
    assert claim["reversal_reason"] == "scanned_twice"
    assert await setting.reversals() == 1


def _tampered(incoming: Incoming[CheckInCancelled]) -> Incoming[CheckInCancelled]:
    changed = incoming.payload.model_copy(update={"reason": CancellationReason.OTHER})
    return Incoming(incoming.envelope, changed, incoming.source)


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        # Another provider's device, naming the check-in's provider: it is not theirs.
        (
            lambda s: s.cancellation(s.other, provider_id=s.own.provider_id),
            DeadLetterReason.WRONG_PROVIDER,
        ),
        # Another provider's device, naming its own provider, well signed: not its check-in.
        (lambda s: s.cancellation(s.other), DeadLetterReason.WRONG_PROVIDER),
        # The own provider's device id, but a body changed after signing.
        (lambda s: _tampered(s.cancellation(s.own)), DeadLetterReason.BAD_SIGNATURE),
        # Signed with a key that is not the device's.
        (
            lambda s: s.cancellation(
                DeviceIdentity(s.own.device_id, s.own.provider_id, Ed25519PrivateKey.generate())
            ),
            DeadLetterReason.BAD_SIGNATURE,
        ),
        # Signed with a key that is not the device's, saying it is the device's key 1 (the
        # one claims knows): no newer key to wait for.
        (
            lambda s: s.cancellation(
                DeviceIdentity(
                    s.own.device_id, s.own.provider_id, Ed25519PrivateKey.generate(), key_id=1
                )
            ),
            DeadLetterReason.BAD_SIGNATURE,
        ),
        # (A device nobody registered, or a key claims has not heard of, waits for its
        # registration: test_parked_cancellations.py.)
    ],
)
async def test_a_forged_cancellation_is_dead_lettered_and_the_claim_stands(
    setting: Setting, forge: Any, reason: DeadLetterReason
) -> None:
    await setting.check_in()
    forged = forge(setting)
    dead = await setting.cancel(forged)
    assert [(d.reason, d.source) for d in dead] == [(reason, forged.source)]
    await _approved_and_standing(setting)


async def test_a_cancellation_by_a_revoked_device_is_dead_lettered(setting: Setting) -> None:
    await setting.check_in()
    async with setting.pool.acquire() as conn:
        await conn.execute(
            "UPDATE devices SET revoked_at = $2 WHERE device_id = $1",
            setting.own.device_id,
            scenario.NOW,
        )
    dead = await setting.cancel(setting.cancellation(setting.own))
    assert [d.reason for d in dead] == [DeadLetterReason.DEVICE_REVOKED]
    await _approved_and_standing(setting)


async def test_only_the_forged_one_of_a_batch_is_refused(setting: Setting) -> None:
    await setting.check_in()
    forged = setting.cancellation(setting.other, provider_id=setting.own.provider_id)
    dead = await setting.cancel(forged, setting.cancellation(setting.own))
    assert [d.source for d in dead] == [forged.source]
    assert (await setting.claim())["reversed_at"] is not None


async def _rotate(setting: Setting, superseded_after: timedelta) -> DeviceIdentity:
    """The own device gets a new key, the old one superseded at NOW + `superseded_after`;
    returns the device with its old key."""
    old = setting.own
    new_key = Ed25519PrivateKey.generate()
    async with setting.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO device_key_history (device_id, key_id, public_key, superseded_at)"
            " SELECT device_id, key_id, public_key, $2 FROM devices WHERE device_id = $1",
            old.device_id,
            scenario.NOW + superseded_after,
        )
        await conn.execute(
            "UPDATE devices SET public_key = $2, key_id = 2 WHERE device_id = $1",
            old.device_id,
            public_key_b64(new_key),
        )
    return old


@pytest.mark.parametrize(
    ("superseded_after", "counts"), [(timedelta(1), True), (-timedelta(1), False)]
)
async def test_a_cancellation_signed_with_a_replaced_key_counts_if_it_came_before_the_rotation(
    setting: Setting, superseded_after: timedelta, counts: bool
) -> None:
    await setting.check_in()
    old = await _rotate(setting, superseded_after)
    cancellation = setting.cancellation(old)
    arrived = dataclasses.replace(cancellation.source, appended_at=scenario.NOW)
    dead = await setting.cancel(Incoming(cancellation.envelope, cancellation.payload, arrived))
    if counts:
        assert dead == []
        assert (await setting.claim())["reversed_at"] is not None
    else:
        assert [d.reason for d in dead] == [DeadLetterReason.BAD_SIGNATURE]
        await _approved_and_standing(setting)


async def test_another_providers_parked_cancellation_neither_cancels_nor_blocks(
    setting: Setting,
) -> None:
    """Before the check-in: another provider's cancellation (well signed, naming its own
    provider) parks first; the real one parks beside it, and only it applies."""
    dead = await setting.cancel(setting.cancellation(setting.other))
    assert dead == []
    dead = await setting.cancel(
        setting.cancellation(setting.own, reason=CancellationReason.DID_NOT_ATTEND)
    )
    assert dead == []
    await setting.check_in()
    claim = await setting.claim()
    assert (claim["outcome"], claim["reason"]) == ("rejected", "checkin_cancelled")
    assert claim["detail"] == "cancelled by the provider: did_not_attend"
    async with setting.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM pending_cancellations") == 0


async def test_only_another_providers_parked_cancellation_leaves_the_checkin_approved(
    setting: Setting,
) -> None:
    await setting.cancel(setting.cancellation(setting.other))
    await setting.check_in()
    await _approved_and_standing(setting)
    async with setting.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM pending_cancellations") == 0
