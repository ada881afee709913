"""Check-ins from a device that claims does not know yet wait here until it does; so do
check-ins signed with a key of the device it has not heard of yet (a rotation: the device
signs with its new key at once, and says so in `key_id`), until that key's registration.

A device's DeviceRegistered (cards.device-registered.v1, read by the card-projection
consumer) and its first check-ins (checkins.checkin-recorded.v1, read by the check-in
consumer) travel on different topics: a provider that registers a device and scans at once
can have its first check-ins judged before claims has the device. Dead-lettered as
`unknown_device`, such a check-in was lost for good: the inbox holds its event id (sent
again, it is a duplicate) and a redrive is refused (the reason is about the message). So a
check-in whose device is simply unknown (not one registered to another provider, revoked,
or with a bad signature: those are judged as before) is parked in its batch's transaction,
as it came — no claim, no nonce used, no dead letter — and put back on the check-in topic
through the outbox in the transaction that applies its device's DeviceRegistered. It is
then judged like any other check-in, by the same handler.

The copy has a new event id derived from the original's (`copy_id`); the original's inbox
row stays. Deleting that row and sending the original id again would work too, but it
would make the card-projection consumer edit the check-in consumer's inbox, and it would
break the inbox's promise that an applied event id is never applied again: a replay of the
original record (offsets are committed after the database commit, so a crash can replay)
would be judged a second time. With a derived id, a replayed original is still a duplicate,
and releasing the same row twice makes the same outbox row. Whatever happens, a check-in
has one outcome: its claim is keyed by checkin_id (UNIQUE in `claims`, and the handler
skips a check-in already decided), and its nonce was not used while it was parked.

The copy reaches the broker when it is released, days after the check-in itself may have:
judged against that, a check-in that came in time would be `out_of_window` through no fault
of the card holder (and one from a device whose clock is ahead would no longer be
`in_the_future`). So the row keeps when the check-in reached us (`arrived_at`, as the
handler counts it), and releasing it writes that time in `released_checkins` under the
copy's inbox key — its event id and body together (shared/inbox.py) — where the handler
finds it (`copy_key`): a header could not say it, since every device may write to the
check-in topic, and a device could name any record a copy to backdate it. A record that
does not name itself a copy (`causation_id` whose `copy_id` is its `ce_id`) is not looked
for, and the lookup rides on the batch's read of its facts: no round trip of its own.

The check-in batch and the projection batch may run at once: the batch reads "no such
device", the projection inserts the device and releases what is parked (nothing yet), the
batch parks — and nobody would release that row. Both therefore take one advisory lock
before they look again: parking re-reads the devices and sends at once those whose device
has come meanwhile; releasing runs after the parking committed and sees its rows. Both
take it last in their transaction (after the holder locks of the batch, and in the
projection after every event of its batch), so it adds no lock cycle. It is taken only
when a batch parks or applies a DeviceRegistered: never on the hot path.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from services.claims.background import every
from services.claims.policy import RefundPolicy
from shared import topics
from shared.consumer import Incoming
from shared.db import DbConnection
from shared.deadletter import DeadLetter, DeadLetterReason, SourceRecord, dead_letter_record
from shared.envelope import Headers
from shared.events.checkins import CheckInRecorded
from shared.inbox import inbox_key
from shared.logging import get_logger, log_context
from shared.outbox import OutgoingRecord, enqueue, headers_from_json, headers_to_json

log = get_logger(__name__)

_COPY_NAMESPACE = uuid.UUID("b3d6a61f-1303-4f03-8537-dcd6b0b6acaf")
# Two-key form (its own key space, apart from the one-key locks of migrations and payment
# runs): the first key names this lock.
_LOCK = "SELECT pg_advisory_xact_lock(7227100, 1)"
_KNOWN_KEYS = "SELECT device_id, key_id FROM devices WHERE device_id = ANY($1::uuid[])"
_PARK = """
INSERT INTO parked_checkins (event_id, checkin_id, device_id, correlation_id, key, headers,
                             payload, source_topic, source_partition, source_offset,
                             awaiting_key_id, arrived_at)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bytea[], $6::bytea[],
                     $7::bytea[], $8::text[], $9::int[], $10::bigint[], $11::int[],
                     $12::timestamptz[])
ON CONFLICT (event_id) DO NOTHING
"""
# What the devices' keys now let go: the device is known, with the key awaited or a later.
_RELEASE = """
DELETE FROM parked_checkins p USING devices d
WHERE p.device_id = ANY($1::uuid[]) AND d.device_id = p.device_id
  AND d.key_id >= p.awaiting_key_id
RETURNING p.event_id, p.checkin_id, p.device_id, p.correlation_id, p.key, p.headers, p.payload,
          p.parked_at, p.arrived_at
"""
# A copy's inbox key and when its original reached us: read by the check-in handler.
_REMEMBER = """
INSERT INTO released_checkins (record_key, arrived_at)
SELECT * FROM unnest($1::uuid[], $2::timestamptz[])
ON CONFLICT (record_key) DO NOTHING
"""
# Copies judged (the handler deletes their rows) or never delivered: not kept longer than a
# parked check-in is.
_FORGET = "DELETE FROM released_checkins WHERE released_at < now() - $1::interval"
_REPLACED_HEADERS = frozenset({"ce_id", "causation_id"})
# $1: how long a check-in waits for a device claims never heard of; $2: for a key of a
# device it knows (a rotation's registration comes within seconds when all is well).
_EXPIRE = """
WITH due AS (
    SELECT p.event_id, d.key_id AS known_key_id FROM parked_checkins p
    LEFT JOIN devices d ON d.device_id = p.device_id
    WHERE p.parked_at < now() - CASE WHEN d.device_id IS NULL THEN $1::interval
                                     ELSE $2::interval END
)
DELETE FROM parked_checkins p USING due WHERE p.event_id = due.event_id
RETURNING p.event_id, p.checkin_id, p.device_id, p.correlation_id, p.key, p.headers, p.payload,
          p.source_topic, p.source_partition, p.source_offset, p.parked_at, p.awaiting_key_id,
          due.known_key_id
"""
# Expired, they are refused as the handler refuses a check-in it cannot authenticate: kept
# with the reason, so `GET /claims/by-checkin` answers for them, and counted in `/stats`.
_REFUSED = """
INSERT INTO unauthenticated_checkins (event_id, checkin_id, device_id, reason, detail)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[])
ON CONFLICT DO NOTHING
"""
# The rows of one check-in still waiting, with the key its device has (null: none yet).
_WAITING = """
SELECT p.device_id, p.awaiting_key_id, p.parked_at, d.key_id AS known_key_id
FROM parked_checkins p LEFT JOIN devices d ON d.device_id = p.device_id
WHERE p.checkin_id = $1 ORDER BY p.parked_at
"""
# A rotation's new key reaches claims within seconds; an hour later it is not coming.
KEY_WAIT = timedelta(hours=1)
# The consumer the check-ins came to: their dead letters name it, as if it had refused them.
CONSUMER = "claims.checkins"


def copy_id(event_id: uuid.UUID) -> uuid.UUID:
    """The event id of a parked check-in put back on its topic."""
    return uuid.uuid5(_COPY_NAMESPACE, str(event_id))


def copy_key(incoming: Incoming[Any]) -> uuid.UUID | None:
    """The key under which a copy's original arrival is kept, for a record that names
    itself a copy (its `ce_id` derived from its `causation_id`); None for any other, which
    costs one test. Naming itself a copy proves nothing (every device may write to the
    topic): only a row under this key, written when the copy was released, does."""
    caused_by = incoming.envelope.causation_id
    if caused_by is None:
        return None
    try:
        original = uuid.UUID(caused_by)
    except ValueError:
        return None
    if incoming.envelope.id != copy_id(original):
        return None
    return inbox_key(incoming.envelope.id, incoming.source.value or b"")


@dataclass(frozen=True)
class _Parked:
    event_id: uuid.UUID
    checkin_id: uuid.UUID
    device_id: uuid.UUID
    correlation_id: str
    key: bytes
    headers: Headers
    payload: bytes
    source: tuple[str, int, int]
    awaiting_key_id: int  # the key it says signed it; 0: any key of its device
    arrived_at: datetime  # when it reached us (the original, for a copy parked again)

    @classmethod
    def of(cls, incoming: Incoming[CheckInRecorded], arrived_at: datetime) -> _Parked:
        c, src = incoming.payload, incoming.source
        return cls(
            incoming.envelope.id,
            c.checkin_id,
            c.device_id,
            incoming.correlation_id,
            src.key or topics.CHECKIN_RECORDED.key_of(c),
            [(k, v) for k, v in src.headers if v is not None],
            src.value or b"",
            (src.topic, src.partition, src.offset),
            c.key_id or 0,
            arrived_at,
        )


async def park(
    conn: DbConnection, checkins: Sequence[tuple[Incoming[CheckInRecorded], datetime]]
) -> None:
    """Inside the batch's transaction, after its other writes: park these check-ins (each
    with when it reached us), or put those whose device has come since the batch read the
    devices straight back."""
    if not checkins:
        return
    parked = [_Parked.of(i, arrived_at) for i, arrived_at in checkins]
    await conn.execute(_LOCK)
    keys = {
        r["device_id"]: r["key_id"]
        for r in await conn.fetch(_KNOWN_KEYS, list({p.device_id for p in parked}))
    }

    def ready(p: _Parked) -> bool:
        return p.device_id in keys and keys[p.device_id] >= p.awaiting_key_id

    waiting = [p for p in parked if not ready(p)]
    if waiting:
        await conn.execute(
            _PARK,
            [p.event_id for p in waiting],
            [p.checkin_id for p in waiting],
            [p.device_id for p in waiting],
            [p.correlation_id for p in waiting],
            [p.key for p in waiting],
            [headers_to_json(p.headers).encode() for p in waiting],
            [p.payload for p in waiting],
            [p.source[0] for p in waiting],
            [p.source[1] for p in waiting],
            [p.source[2] for p in waiting],
            [p.awaiting_key_id for p in waiting],
            [p.arrived_at for p in waiting],
        )
    arrived = [p for p in parked if ready(p)]
    copies = [_copy(p.event_id, p.key, p.headers, p.payload) for p in arrived]
    await _remember(conn, copies, [p.arrived_at for p in arrived])
    await enqueue(conn, copies)
    for p in arrived:
        with log_context(correlation_id=p.correlation_id):
            log.info(
                "parked check-in released: device or key now known",
                checkin_id=p.checkin_id,
                device_id=p.device_id,
                event_id=copy_id(p.event_id),
            )


async def release(conn: DbConnection, device_ids: Collection[uuid.UUID]) -> int:
    """Inside the transaction that applied these devices' DeviceRegistered, after the rest of
    its batch: put their parked check-ins back on the check-in topic. Returns how many."""
    if not device_ids:
        return 0
    await conn.execute(_LOCK)
    rows = await conn.fetch(_RELEASE, list(set(device_ids)))
    copies = [
        _copy(
            r["event_id"],
            r["key"],
            headers_from_json(bytes(r["headers"]).decode()),
            r["payload"],
        )
        for r in rows
    ]
    await _remember(conn, copies, [r["arrived_at"] for r in rows])
    await enqueue(conn, copies)
    now = datetime.now(UTC)
    for r in rows:
        with log_context(correlation_id=r["correlation_id"]):
            log.info(
                "parked check-in released: device or key now known",
                checkin_id=r["checkin_id"],
                device_id=r["device_id"],
                event_id=copy_id(r["event_id"]),
                parked_s=round((now - r["parked_at"]).total_seconds(), 1),
                arrived_at=r["arrived_at"].isoformat(),
            )
    return len(rows)


async def _remember(
    conn: DbConnection, copies: Sequence[OutgoingRecord], arrived_at: Sequence[datetime]
) -> None:
    """Keeps when each copy's original reached us, under the copy's inbox key (copy_key)."""
    if copies:
        await conn.execute(
            _REMEMBER,
            [inbox_key(uuid.UUID(c.event_id), c.payload) for c in copies],
            list(arrived_at),
        )


def _copy(event_id: uuid.UUID, key: bytes, headers: Headers, payload: bytes) -> OutgoingRecord:
    """The parked record as it came, under its derived id, caused by the original."""
    new_id = copy_id(event_id)
    kept = [(k, v) for k, v in headers if k not in _REPLACED_HEADERS]
    kept += [("ce_id", str(new_id).encode()), ("causation_id", str(event_id).encode())]
    return OutgoingRecord(
        event_id=str(new_id),
        topic=topics.CHECKIN_RECORDED.name,
        key=key,
        headers=kept,
        payload=payload,
        # The id is derived: kept a while after publishing, so the same copy is sent once.
        retain=True,
    )


async def readiness_figures(conn: DbConnection) -> dict[str, Any]:
    """How many wait and the oldest since when: in `GET /health/ready` (so `vtp status` sees
    them) and at the head of `GET /checkins/parked`."""
    row = await conn.fetchrow(
        "SELECT count(*) AS n, extract(epoch FROM now() - min(parked_at)) AS oldest_s"
        " FROM parked_checkins"
    )
    assert row is not None  # an aggregate always returns its one row
    oldest = row["oldest_s"]
    return {
        "checkins_parked": row["n"],
        "checkins_parked_oldest_s": None if oldest is None else round(float(oldest), 1),
    }


async def parked_figures(conn: DbConnection, devices_shown: int = 100) -> dict[str, Any]:
    """What waits for its device, per device (the longest waiting first): for operators
    (GET /checkins/parked)."""
    devices = await conn.fetch(
        "SELECT device_id, count(*) AS checkins, min(parked_at) AS first_parked_at,"
        " max(awaiting_key_id) AS awaiting_key_id"
        " FROM parked_checkins GROUP BY device_id ORDER BY min(parked_at) LIMIT $1",
        devices_shown,
    )
    return {
        **await readiness_figures(conn),
        "devices": [
            {
                "device_id": str(d["device_id"]),
                "checkins": d["checkins"],
                "first_parked_at": d["first_parked_at"].isoformat(),
                # The newest key they say signed them (null: no key said).
                "awaiting_key_id": d["awaiting_key_id"] or None,
            }
            for d in devices
        ],
    }


async def expire(conn: DbConnection, older_than: timedelta, key_wait: timedelta = KEY_WAIT) -> int:
    """Dead-letters the check-ins parked longer than `older_than` for a device claims never
    heard of (`unknown_device`): by then its registration is not on its way, and a check-in
    older than the check-in window could not be approved anyway (judged now, it would be
    `out_of_window`); and those parked longer than `key_wait` for a key of a device it knows
    (`bad_signature`: a key that was never registered signed them). The table stays bounded,
    and an operator sees them in `vtp deadletters list` and `vtp status`; they are kept as
    refused, as the handler keeps a check-in it cannot authenticate. The arrivals of
    copies released as long ago go too."""
    await conn.execute(_FORGET, older_than)
    rows = await conn.fetch(_EXPIRE, older_than, key_wait)
    letters = [
        DeadLetter(
            SourceRecord(
                r["source_topic"],
                r["source_partition"],
                r["source_offset"],
                r["key"],
                r["payload"],
                headers_from_json(bytes(r["headers"]).decode()),
            ),
            *_why_expired(r),
        )
        for r in rows
    ]
    await enqueue(conn, [dead_letter_record(letter, CONSUMER) for letter in letters])
    if rows:
        await conn.execute(
            _REFUSED,
            [r["event_id"] for r in rows],
            [r["checkin_id"] for r in rows],
            [r["device_id"] for r in rows],
            [letter.reason.value for letter in letters],
            [letter.detail for letter in letters],
        )
    for r, letter in zip(rows, letters, strict=True):
        with log_context(correlation_id=r["correlation_id"]):
            log.warning(
                "parked check-in dead-lettered",
                reason=letter.reason.value,
                checkin_id=r["checkin_id"],
                device_id=r["device_id"],
            )
    return len(rows)


def _why_expired(r: Any) -> tuple[DeadLetterReason, str]:
    since = r["parked_at"].isoformat()
    if r["known_key_id"] is None:
        return (
            DeadLetterReason.UNKNOWN_DEVICE,
            f"device {r['device_id']} was never registered: parked since {since}",
        )
    return (
        DeadLetterReason.BAD_SIGNATURE,
        f"signed with key {r['awaiting_key_id']} of device {r['device_id']}, which was never"
        f" registered (claims knows key {r['known_key_id']}): parked since {since}",
    )


async def waiting(
    conn: DbConnection, checkin_id: uuid.UUID, older_than: timedelta, key_wait: timedelta = KEY_WAIT
) -> str | None:
    """What a parked check-in waits for, since when, and until when it waits (`expire`'s
    `older_than` and `key_wait`); None for one that is not parked."""
    rows = await conn.fetch(_WAITING, checkin_id)
    return _why_waiting(checkin_id, rows[0], older_than, key_wait) if rows else None


def _why_waiting(checkin_id: uuid.UUID, r: Any, older_than: timedelta, key_wait: timedelta) -> str:
    """In the words of `_why_expired`: what it waits for, since when, until when."""
    since = r["parked_at"]
    if r["known_key_id"] is None:
        return (
            f"check-in {checkin_id} has no outcome yet: it waits for the registration of its"
            f" device {r['device_id']}, which claims has not received, since"
            f" {since.isoformat()}; it is judged when that comes, and refused as unknown_device"
            f" if it has not come by {(since + older_than).isoformat()}"
        )
    return (
        f"check-in {checkin_id} has no outcome yet: it is signed with key"
        f" {r['awaiting_key_id']} of device {r['device_id']} and waits for that key's"
        f" registration (claims knows key {r['known_key_id']}), since {since.isoformat()};"
        f" it is judged when that comes, and refused as bad_signature if it has not come by"
        f" {(since + key_wait).isoformat()}"
    )


def keep_for(policy: RefundPolicy) -> timedelta:
    """How long a check-in stays parked: the longest check-in window of any policy version,
    and a day of margin."""
    return timedelta(days=max(v.checkin_window_days for v in policy.versions) + 1)


async def expire_hourly(pool: asyncpg.Pool, older_than: timedelta, stop: asyncio.Event) -> None:
    """`expire` once an hour, from start; a failure is logged and tried again next time."""

    async def once() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await expire(conn, older_than)

    await every(
        3600,
        once,
        stop,
        failed="expiring parked check-ins failed; tried again in an hour",
        at_start=True,
    )
