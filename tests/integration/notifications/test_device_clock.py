"""A device's clock off, through the real batch consumer on a real PostgreSQL: when an
accepted heartbeat says the clock is off by more than NOTIFICATIONS_DEVICE_CLOCK_OFF_S
(120 s), the device's provider is told (device_clock_off), once per episode, in the
heartbeat's transaction. A new episode begins only after a heartbeat that says the clock is
right again; a copy of a heartbeat, or one sent before the last judged, changes nothing."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import asyncpg
import pytest

from shared.events import cards as ev
from tests.integration.notifications.conftest import Feed
from tests.integration.notifications.test_device_heartbeats import (
    NOW,
    beat,
    dead_letters,
    device_row,
    new_device,
    provider,
    receive,
    registered,
)

pytestmark = pytest.mark.integration

MINUTE = 60_000  # ms
AHEAD = 20 * MINUTE


async def clock_notices(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT recipient, subject, body, payload::text AS payload, status FROM deliveries"
        " WHERE kind = 'device_clock_off' ORDER BY created_at"
    )


async def test_a_device_twenty_minutes_ahead_is_told_once_per_episode(
    feed: Feed, pool: asyncpg.Pool
) -> None:
    device = new_device()
    await receive(feed, NOW - timedelta(days=8), provider(device), registered(device))
    # Twenty minutes ahead, a heartbeat every five minutes: one notice.
    start = NOW - timedelta(hours=2)
    for n in range(6):
        at = start + timedelta(minutes=5 * n)
        await receive(feed, at, beat(device, at + timedelta(milliseconds=AHEAD), AHEAD))
    [notice] = await clock_notices(pool)
    assert notice["recipient"] == f"provider:{device.provider_id}"
    assert notice["status"] == "pending"
    short = str(device.device_id)[:8]
    assert notice["subject"] == f"Vrijetijdspas: de klok van toestel {short} loopt 20 min voor"
    assert notice["body"].startswith("Beste Cultuurcentrum Zwaneberg,")
    assert f"De klok van toestel {short} loopt 20 min voor." in notice["body"]
    assert "geweigerd" in notice["body"] and "NTP" in notice["body"]
    assert not re.search(r"\d{13}", notice["body"])  # no card number
    payload = json.loads(notice["payload"])
    assert payload["device_id"] == str(device.device_id)
    assert payload["clock_offset_ms"] == AHEAD and payload["ahead"] is True
    row = await device_row(pool, device)
    assert row["clock_offset_ms"] == AHEAD

    # Set right: its heartbeats are dated before its last wrong one, and still end the
    # episode (they are sent later, by the clock it measures against). No notice for that.
    right = start + timedelta(minutes=35)
    for n in range(3):
        at = right + timedelta(minutes=5 * n)
        await receive(feed, at, beat(device, at + timedelta(seconds=1), 1_000))
    assert len(await clock_notices(pool)) == 1
    assert await pool.fetchval(
        "SELECT clock_off_since IS NULL FROM devices WHERE device_id = $1", device.device_id
    )

    # Off again, now behind: a second episode, a second notice.
    behind = -(72 * MINUTE)
    again = right + timedelta(minutes=60)
    for n in range(3):
        at = again + timedelta(minutes=5 * n)
        await receive(feed, at, beat(device, at + timedelta(milliseconds=behind), behind))
    notices = await clock_notices(pool)
    assert len(notices) == 2
    assert f"De klok van toestel {short} loopt 1 u 12 min achter." in notices[1]["body"]
    assert "op de verkeerde dag geboekt" in notices[1]["body"]
    assert await dead_letters(pool) == {}


async def test_a_copy_or_a_heartbeat_sent_before_the_last_changes_nothing(
    feed: Feed, pool: asyncpg.Pool
) -> None:
    device = new_device()
    await receive(feed, NOW - timedelta(days=8), provider(device), registered(device))
    t0 = NOW - timedelta(hours=1)
    right = beat(device, t0, 0)  # sent at t0 with a right clock…
    await receive(feed, t0, right)
    # …then the clock jumps twenty minutes ahead.
    off = beat(device, t0 + timedelta(minutes=21), AHEAD)
    [off_record] = await receive(feed, t0 + timedelta(minutes=1), off)
    assert len(await clock_notices(pool)) == 1

    # The right heartbeat of t0 again (a copy under a new event id, or late): accepted (sent
    # about now), but sent before the last judged: the episode goes on.
    await receive(feed, t0 + timedelta(minutes=2), right)
    await receive(feed, t0 + timedelta(minutes=3), beat(device, t0 + timedelta(minutes=23), AHEAD))
    # The off heartbeat again: the same record redelivered (the inbox), and a copy under a
    # new event id, minutes after it was sent (believed, as any recent copy: it keeps the
    # device alive for minutes at most).
    await feed.processor.process([off_record])
    await receive(feed, t0 + timedelta(minutes=4), off)
    assert len(await clock_notices(pool)) == 1
    assert await dead_letters(pool) == {}

    # Set right at minute 6; then a heartbeat sent at minute 5, still off, arrives late.
    # Its sent_at is the latest the device ever signed, yet it was sent before the right
    # one: no new episode.
    await receive(feed, t0 + timedelta(minutes=6), beat(device, t0 + timedelta(minutes=6), 0))
    late_off = beat(device, t0 + timedelta(minutes=25), AHEAD)
    await receive(feed, t0 + timedelta(minutes=7), late_off)
    assert len(await clock_notices(pool)) == 1
    assert await pool.fetchval(
        "SELECT clock_off_since IS NULL FROM devices WHERE device_id = $1", device.device_id
    )
    # A copy of the off heartbeat much later is a replay, and tells nobody either.
    [copy] = await receive(feed, t0 + timedelta(minutes=40), off)
    assert await dead_letters(pool) == {copy.offset: "replayed"}
    assert len(await clock_notices(pool)) == 1


async def test_only_a_clock_off_by_more_than_the_threshold_is_told(
    feed: Feed, pool: asyncpg.Pool
) -> None:
    within, edge, unknown, off, late_provider = (new_device() for _ in range(5))
    for d in (edge, unknown, off):
        d.provider_id = within.provider_id
    await receive(
        feed,
        NOW - timedelta(days=8),
        provider(within),
        *(registered(d) for d in (within, edge, unknown, off, late_provider)),
    )
    for n in range(4):
        at = NOW - timedelta(minutes=30 - 5 * n)
        await receive(
            feed,
            at,
            beat(within, at - timedelta(seconds=90), -90_000),
            beat(edge, at + timedelta(seconds=120), 120_000),  # the threshold itself
            beat(unknown, at + timedelta(hours=3)),  # no offset: nothing said of the clock
            beat(off, at + timedelta(seconds=121), 121_000),
            beat(late_provider, at + timedelta(milliseconds=AHEAD), AHEAD),
        )
    notices = await clock_notices(pool)
    assert [json.loads(n["payload"])["device_id"] for n in notices] == [str(off.device_id)]
    assert "loopt 2 min 1 s voor" in notices[0]["subject"]

    # A provider not known yet is told by the next heartbeat after it is, in its language.
    await receive(feed, NOW - timedelta(minutes=9), provider(late_provider))
    await pool.execute(
        "INSERT INTO preferences (recipient, language) VALUES ($1, 'en')",
        f"provider:{late_provider.provider_id}",
    )
    await receive(feed, NOW, beat(late_provider, NOW + timedelta(milliseconds=AHEAD), AHEAD))
    notices = await clock_notices(pool)
    assert len(notices) == 2
    assert notices[1]["recipient"] == f"provider:{late_provider.provider_id}"
    assert notices[1]["subject"].endswith(
        f"the clock of device {str(late_provider.device_id)[:8]} is 20 min ahead"
    )
    assert await dead_letters(pool) == {}


async def test_a_revoked_device_is_not_told_about(feed: Feed, pool: asyncpg.Pool) -> None:
    lost, kept = new_device(), new_device()
    kept.provider_id = lost.provider_id
    await receive(feed, NOW - timedelta(days=8), provider(lost), registered(lost), registered(kept))
    await receive(
        feed,
        NOW - timedelta(hours=1),
        ev.DeviceRevoked(
            device_id=lost.device_id,
            provider_id=lost.provider_id,
            revoked_at=NOW - timedelta(hours=1),
            reason=ev.DeviceRevocationReason.LOST,
        ),
    )
    [refused, _] = await receive(
        feed,
        NOW,
        beat(lost, NOW + timedelta(milliseconds=AHEAD), AHEAD),
        beat(kept, NOW + timedelta(milliseconds=AHEAD), AHEAD),
    )
    assert await dead_letters(pool) == {refused.offset: "device_revoked"}
    notices = await clock_notices(pool)
    assert [json.loads(n["payload"])["device_id"] for n in notices] == [str(kept.device_id)]
