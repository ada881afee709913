"""Heartbeats through the real batch consumer on a real PostgreSQL: only a heartbeat signed
with the key the cards service registered, naming the device's provider, counts, and it
counts at the moment we receive it, whatever the device's clock says. Anything else is
dead-lettered with the reason claims gives a check-in, and changes nothing."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.notifications.jobs import Jobs
from shared.checkin_signature import public_key_b64
from shared.deadletter import REASON_HEADER, SourceRecord
from shared.events import cards as ev
from shared.events.base import EventPayload
from shared.events.checkins import DeviceHeartbeat
from shared.outbox import headers_from_json
from shared.topics import DEAD_LETTER_TOPIC
from tests.integration.notifications.conftest import Feed
from vtp.device.signer import DeviceIdentity

pytestmark = pytest.mark.integration

# Whole minutes: the receipt times below fall on the days they are meant to.
NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def new_device() -> DeviceIdentity:
    return DeviceIdentity(uuid.uuid4(), uuid.uuid4(), Ed25519PrivateKey.generate())


def registered(identity: DeviceIdentity, key_id: int = 1, days_ago: int = 8) -> ev.DeviceRegistered:
    return ev.DeviceRegistered(
        device_id=identity.device_id,
        provider_id=identity.provider_id,
        public_key=public_key_b64(identity.private_key),
        key_id=key_id,
        registered_at=NOW - timedelta(days=days_ago),
    )


def provider(identity: DeviceIdentity) -> ev.ProviderRegistered:
    return ev.ProviderRegistered(
        provider_id=identity.provider_id,
        name="Cultuurcentrum Zwaneberg",
        sub_municipality="Heist-Centrum",
        contact_email="cc@example.org",
    )


def beat(identity: DeviceIdentity, sent_at: datetime, offset: int | None = None) -> DeviceHeartbeat:
    return identity.heartbeat(buffered=0, clock_offset_ms=offset, sent_at=sent_at)[1]


async def receive(feed: Feed, at: datetime, *payloads: EventPayload) -> list[SourceRecord]:
    """Feed events as received at `at` (by our clock); their records."""
    feed.router.clock = lambda: at
    records = [feed.record(p) for p in payloads]
    await feed.processor.process(records)
    return records


async def dead_letters(pool: asyncpg.Pool) -> dict[int, str]:
    """Dead letters waiting in the outbox: source offset → reason."""
    letters = {}
    for row in await pool.fetch(
        "SELECT headers::text AS headers FROM outbox WHERE topic = $1", DEAD_LETTER_TOPIC
    ):
        headers = {k: v.decode() for k, v in headers_from_json(row["headers"])}
        letters[int(headers["dlq_source_offset"])] = headers[REASON_HEADER]
    return letters


async def device_row(pool: asyncpg.Pool, identity: DeviceIdentity) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT provider_id, last_seen_at, reported_at, clock_offset_ms, revoked FROM devices"
        " WHERE device_id = $1",
        identity.device_id,
    )
    assert row is not None
    return row


async def test_only_signed_heartbeats_of_the_registered_device_count(
    feed: Feed, pool: asyncpg.Pool
) -> None:
    device = new_device()
    await receive(feed, NOW - timedelta(days=8), registered(device))
    genuine = beat(device, NOW - timedelta(hours=3))
    await receive(feed, NOW - timedelta(hours=1), genuine)
    assert (await device_row(pool, device))["last_seen_at"] == NOW - timedelta(hours=1)
    assert await dead_letters(pool) == {}

    stranger = new_device()  # a sender the cards service never registered
    forger = DeviceIdentity(device.device_id, uuid.uuid4(), Ed25519PrivateKey.generate())
    impostor = DeviceIdentity(device.device_id, device.provider_id, Ed25519PrivateKey.generate())
    refused = await receive(
        feed,
        NOW,
        beat(stranger, NOW),
        beat(forger, NOW),  # another provider's name on our device
        beat(impostor, NOW),  # the right ids, the wrong key
        beat(device, NOW).model_copy(update={"signature": "s"}),
        genuine,  # a copy of a genuine heartbeat, under a new event id
    )
    assert await dead_letters(pool) == {
        refused[0].offset: "unknown_device",
        refused[1].offset: "unknown_device",
        refused[2].offset: "bad_signature",
        refused[3].offset: "bad_signature",
        refused[4].offset: "replayed",
    }
    # None of them made a device or kept ours alive.
    assert await pool.fetchval("SELECT count(*) FROM devices") == 1
    row = await device_row(pool, device)
    assert row["last_seen_at"] == NOW - timedelta(hours=1)
    assert row["provider_id"] == device.provider_id

    await receive(
        feed,
        NOW,
        ev.DeviceRevoked(
            device_id=device.device_id,
            provider_id=device.provider_id,
            revoked_at=NOW,
            reason=ev.DeviceRevocationReason.LOST,
        ),
    )
    [late] = await receive(
        feed, NOW + timedelta(minutes=5), beat(device, NOW + timedelta(minutes=5))
    )
    assert (await dead_letters(pool))[late.offset] == "device_revoked"
    assert (await device_row(pool, device))["last_seen_at"] == NOW - timedelta(hours=1)


async def test_a_heartbeat_that_overtakes_the_registration_is_refused_the_next_counts(
    feed: Feed, pool: asyncpg.Pool
) -> None:
    device = new_device()
    [early] = await receive(
        feed, NOW - timedelta(minutes=10), beat(device, NOW - timedelta(minutes=10))
    )
    assert await dead_letters(pool) == {early.offset: "unknown_device"}
    assert await pool.fetchval("SELECT count(*) FROM devices") == 0
    await receive(feed, NOW - timedelta(minutes=9), registered(device, days_ago=0))
    await receive(feed, NOW, beat(device, NOW))
    assert (await device_row(pool, device))["last_seen_at"] == NOW
    assert len(await dead_letters(pool)) == 1


async def test_a_rotated_key_replaces_the_old_one_and_a_late_old_registration_does_not(
    feed: Feed, pool: asyncpg.Pool
) -> None:
    device = new_device()
    old_key = device.private_key
    await receive(feed, NOW - timedelta(days=2), registered(device))
    device.private_key = Ed25519PrivateKey.generate()
    await receive(feed, NOW - timedelta(days=1), registered(device, key_id=2))
    old = DeviceIdentity(device.device_id, device.provider_id, old_key)
    [by_old_key] = await receive(
        feed, NOW - timedelta(hours=2), beat(old, NOW - timedelta(hours=2))
    )
    # The first registration, delivered again late, does not bring the old key back.
    await receive(
        feed, NOW - timedelta(hours=2), registered(old).model_copy(update={"registered_at": NOW})
    )
    [by_old_key_again] = await receive(
        feed, NOW - timedelta(hours=1), beat(old, NOW - timedelta(hours=1))
    )
    await receive(feed, NOW, beat(device, NOW))
    assert await dead_letters(pool) == {
        by_old_key.offset: "bad_signature",
        by_old_key_again.offset: "bad_signature",
    }
    assert (await device_row(pool, device))["last_seen_at"] == NOW


async def test_silence_is_judged_by_when_we_heard_the_device_not_by_its_clock(
    feed: Feed, jobs: Jobs, pool: asyncpg.Pool
) -> None:
    slow, fast = new_device(), new_device()
    fast.provider_id = slow.provider_id
    await receive(feed, NOW - timedelta(days=8), provider(slow), registered(slow), registered(fast))
    # Working, with a clock 30 hours slow: heard every day of the week, the last time an
    # hour ago, every heartbeat dated more than a day back.
    for days in range(6, -1, -1):
        at = NOW - timedelta(days=days, hours=1)
        await receive(feed, at, beat(slow, at - timedelta(hours=30), offset=-30 * 3_600_000))
    # Dead since 26 hours, with a clock two days fast: its last heartbeat is dated tomorrow.
    for days in range(5, -1, -1):
        at = NOW - timedelta(days=days, hours=26)
        await receive(feed, at, beat(fast, at + timedelta(days=2)))
    assert await dead_letters(pool) == {}

    row = await device_row(pool, slow)
    assert row["last_seen_at"] == NOW - timedelta(hours=1)  # when we heard it…
    assert row["reported_at"] == NOW - timedelta(hours=31)  # …and what it said, to read
    assert row["clock_offset_ms"] == -30 * 3_600_000

    # Hour after hour: the dead device is reported once, the working one never.
    told = [
        (await jobs.run("silent-devices", NOW + timedelta(hours=h)))["notifications"]
        for h in range(4)
    ]
    assert told == [1, 0, 0, 0]
    silent = await pool.fetch(
        "SELECT payload->>'device_id' AS device FROM deliveries WHERE kind = 'device_silent'"
    )
    assert [r["device"] for r in silent] == [str(fast.device_id)]

    # Heard again, then silent again: a new episode, a new alarm.
    back = NOW + timedelta(hours=4)
    await receive(feed, back, beat(fast, back + timedelta(days=2)))
    assert (await jobs.run("silent-devices", back + timedelta(hours=1)))["notifications"] == 0
    later = back + timedelta(hours=25)
    await receive(feed, later, beat(slow, later - timedelta(hours=30)))
    assert (await jobs.run("silent-devices", later))["notifications"] == 1
    assert (await jobs.run("silent-devices", later + timedelta(hours=1)))["notifications"] == 0


async def test_a_device_is_silent_when_it_misses_its_usual_days_not_its_closed_days(
    feed: Feed, jobs: Jobs, pool: asyncpg.Pool
) -> None:
    """Four weeks of heartbeats up to the weekend summer time began (29/03/2026): a device
    that works every day, one that works Monday to Friday and a youth club's that works on
    Wednesday and Saturday. Each is reported when it missed a day of its own usual time."""
    brussels = ZoneInfo("Europe/Brussels")

    def at(day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2026, 3, day, hour, minute, tzinfo=brussels).astimezone(UTC)

    daily, office, club = new_device(), new_device(), new_device()
    office.provider_id = club.provider_id = daily.provider_id
    first = at(1, 8)
    await receive(
        feed,
        first,
        provider(daily),
        *(registered(d).model_copy(update={"registered_at": first}) for d in (daily, office, club)),
    )
    heartbeats = []
    for day in range(2, 29):  # Monday 2 March to Saturday 28 March
        weekday = date(2026, 3, day).weekday()
        for hour in (9, 17):
            heartbeats.append((at(day, hour), daily))
            if weekday < 5:
                heartbeats.append((at(day, hour, 1), office))
        if weekday in (2, 5):
            heartbeats.append((at(day, 22), club))
    for moment, device in sorted(heartbeats, key=lambda h: h[0]):
        if device is daily and moment > at(27, 17):
            continue  # every device falls silent: this one on Friday at 17:00…
        if device is office and moment > at(27, 17, 1):
            continue  # …this one too (and so misses Monday)
        await receive(feed, moment, beat(device, moment))
    assert await dead_letters(pool) == {}

    async def told(moment: datetime) -> list[str]:
        before = await pool.fetchval("SELECT count(*) FROM deliveries")
        await jobs.run("silent-devices", moment)
        rows = await pool.fetch(
            "SELECT payload->>'device_id' AS device FROM deliveries ORDER BY created_at OFFSET $1",
            before,
        )
        names = {str(daily.device_id): "daily", str(office.device_id): "office"}
        return [names.get(r["device"], "club") for r in rows]

    assert await told(at(28, 16, 59)) == []
    assert await told(at(28, 17)) == ["daily"]  # a day of silence on a usual day
    # The weekend is the office's and the club's usual time off: silence there is not news.
    assert await told(at(29, 23)) == []
    assert await told(at(30, 17, 0)) == []  # Friday 17:01 to 24:00 and Monday to 17:00…
    assert await told(at(30, 17, 1)) == ["office"]  # …make 24 hours of its usual days.
    assert await told(datetime(2026, 4, 1, 21, 59, tzinfo=brussels)) == []
    assert await told(datetime(2026, 4, 1, 22, tzinfo=brussels)) == ["club"]  # its Wednesday
    assert await told(datetime(2026, 4, 4, 22, tzinfo=brussels)) == []  # once

    rows = {
        r["device"]: r
        for r in await pool.fetch(
            "SELECT payload->>'device_id' AS device, body, payload->'usual_weekdays' AS days"
            " FROM deliveries WHERE kind = 'device_silent'"
        )
    }
    office_row, club_row = rows[str(office.device_id)], rows[str(club.device_id)]
    assert (
        f"Toestel {str(office.device_id)[:8]} heeft sinds 27/03/2026 17:01 niets meer"
        " gestuurd, terwijl het meestal op maandag, dinsdag, woensdag, donderdag en vrijdag"
        " actief is." in office_row["body"]
    )
    assert "sinds 28/03/2026 22:00" in club_row["body"]
    assert "meestal op woensdag en zaterdag actief" in club_row["body"]
    assert "meestal elke dag actief" in rows[str(daily.device_id)]["body"]
    assert json.loads(club_row["days"]) == ["wednesday", "saturday"]
