"""Check-ins from a device that claims does not know yet wait here until it does; so do
check-ins signed with a key of the device it has not heard of yet (a rotation: the device
signs with its new key at once, and says so in `key_id`), until that key's registration,
and check-ins with a card claims does not know yet, until the card's CardIssued. One table,
one mechanism: each row says what it waits for (`awaiting_card`, the card number; else
`awaiting_key_id`, the key of its device, 0 for any).

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

A card comes the same way: CardIssued (cards.card-issued.v1) is applied by the card-
projection consumer, so after an outage of claims, or when a holder uses a brand-new card
at once, a check-in can be judged before claims has its card. Rejected as `unknown_card`,
the holder lost the refund for good, as above. So a check-in that authenticated (device
known, signature valid, nonce not used) but whose card number claims has no card for is
parked too — unless its outcome does not depend on the card: one its provider cancelled
before it came, or one `in_the_future` or `out_of_window`, is judged at once as before —
and put back in the transaction that applies its card's CardIssued. The lookup costs
nothing more: the batch reads its cards anyway, and only a batch that parks comes here.
A card that never comes is a mistyped or forged number: after the same wait as a device
(`expire`), the check-in is put back all the same, marked as no longer waiting
(`wait_over` in `released_checkins`), and the handler judges it as it did before there was
any waiting: `unknown_card` (a ClaimRejected; no dead letter: it authenticated), or
`checkin_cancelled` if its provider cancelled it meanwhile. They are counted apart from
those waiting for a device (`checkins_awaiting_card`): most are mistyped numbers, nothing
for an operator to see to, and `vtp status` warns only of the others. Card numbers stay out
of the logs and of what the API says: a check-in is named by its id and its device, a card
by its card_id once claims knows it.

A cancellation (CheckInCancelled, cancellations.py) signed by a device claims does not know
yet, or with a key of it claims has not heard of yet (it says which in `key_id`), waits the
same way, in the same table (`kind` 'cancellation'; `checkin_id` is the check-in it
cancels): a provider that registers a device, or rotates a key, and cancels at once would
otherwise have its cancellation dead-lettered for good — and the card holder refunded for
an activity that did not take place. Its shape is a check-in's (the record as it came, the
device, the key it says signed it, when it reached us), so it is one mechanism, not a twin:
parked by the cancellation batch (`park`, with `cancellations`), put back on the
cancellation topic by the same release, under a copy id of its own namespace, with its
arrival kept in `released_checkins` (the cancellation handler reads it: a key replaced after
the original reached the broker still counts), and expired by the same rules — dead-
lettered as `unknown_device` or `bad_signature` under the cancellation consumer's name, as
it was at once before. It never waits for a card: one that overtakes its check-in waits in
`pending_cancellations` (cancellations.py). What is refused for another reason (a device of
another provider, revoked, a bad signature without a newer key) is refused as before.

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

The check-in (or cancellation) batch and the projection batch may run at once: the batch
reads "no such device" (or card), the projection inserts the device (or card) and releases
what is parked (nothing yet), the batch parks — and nobody would release that row. Both
therefore take one advisory lock before they look again: parking re-reads the devices and
cards and sends at once those whose device or card has come meanwhile; releasing runs after
the parking committed and sees its rows. Both take it last in their transaction (after the
holder locks of the batch, and in the projection after every event of its batch), so it
adds no lock cycle. It is taken only when a check-in or cancellation batch parks or a
projection batch applies a DeviceRegistered or CardIssued: never on the check-in hot path.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import asyncpg

from services.claims.background import hourly_in_transaction
from services.claims.policy import RefundPolicy
from shared import topics
from shared.consumer import Incoming
from shared.db import DbConnection
from shared.deadletter import DeadLetter, DeadLetterReason, SourceRecord, dead_letter_record
from shared.envelope import Headers
from shared.events.checkins import CheckInCancelled, CheckInRecorded
from shared.inbox import inbox_key
from shared.logging import get_logger, log_context
from shared.outbox import OutgoingRecord, enqueue, headers_from_json, headers_to_json

log = get_logger(__name__)

_COPY_NAMESPACE = uuid.UUID("b3d6a61f-1303-4f03-8537-dcd6b0b6acaf")
# A cancellation's copy: apart, so that one reusing its check-in's event id (a device picks
# it) is not taken for that check-in's copy in the outbox.
_CANCELLATION_COPY_NAMESPACE = uuid.UUID("5f0f4b8e-8c1e-4d52-9a43-2b7e6a1c9d30")
# What a parked row is (the `kind` column).
Kind = Literal["checkin", "cancellation"]
CHECKIN: Kind = "checkin"
CANCELLATION: Kind = "cancellation"


@dataclass(frozen=True)
class _Sort:
    """Where a kind of record comes from and goes back to."""

    topic: topics.Topic
    namespace: uuid.UUID  # of its copies' ids
    consumer: str  # that refuses it: its dead letters name it
    noun: str  # in the logs


_SORTS: dict[str, _Sort] = {
    CHECKIN: _Sort(topics.CHECKIN_RECORDED, _COPY_NAMESPACE, "claims.checkins", "check-in"),
    CANCELLATION: _Sort(
        topics.CHECKIN_CANCELLED,
        _CANCELLATION_COPY_NAMESPACE,
        "claims.cancellations",
        "cancellation",
    ),
}
# Two-key form (its own key space, apart from the one-key locks of migrations and payment
# runs): the first key names this lock.
_LOCK = "SELECT pg_advisory_xact_lock(7227100, 1)"
# What the batch waits for, read again under the lock: its devices' keys, and its cards.
_KNOWN = """
SELECT ARRAY(SELECT ROW(device_id, key_id) FROM devices
             WHERE device_id = ANY($1::uuid[])) AS keys,
       ARRAY(SELECT card_number FROM cards WHERE card_number = ANY($2::text[])) AS cards
"""
_PARK = """
INSERT INTO parked_checkins (event_id, checkin_id, device_id, correlation_id, key, headers,
                             payload, source_topic, source_partition, source_offset,
                             awaiting_key_id, arrived_at, awaiting_card, kind)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bytea[], $6::bytea[],
                     $7::bytea[], $8::text[], $9::int[], $10::bigint[], $11::int[],
                     $12::timestamptz[], $13::text[], $14::text[])
ON CONFLICT (event_id, kind) DO NOTHING
"""
# What the devices' keys now let go: the device is known, with the key awaited or a later.
_RELEASE = """
DELETE FROM parked_checkins p USING devices d
WHERE p.device_id = ANY($1::uuid[]) AND p.awaiting_card IS NULL AND d.device_id = p.device_id
  AND d.key_id >= p.awaiting_key_id
RETURNING p.event_id, p.checkin_id, p.device_id, p.correlation_id, p.key, p.headers, p.payload,
          p.parked_at, p.arrived_at, NULL::uuid AS card_id, p.kind
"""
# What the cards now let go (with their card_id, which names them in the log).
_RELEASE_CARDS = """
DELETE FROM parked_checkins p USING cards c
WHERE p.awaiting_card = ANY($1::text[]) AND c.card_number = p.awaiting_card
RETURNING p.event_id, p.checkin_id, p.device_id, p.correlation_id, p.key, p.headers, p.payload,
          p.parked_at, p.arrived_at, c.card_id, p.kind
"""
# A copy's inbox key and when its original reached us, and whether its wait is over (a card
# that never came): read by the check-in handler.
_REMEMBER = """
INSERT INTO released_checkins (record_key, arrived_at, wait_over)
SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::boolean[])
ON CONFLICT (record_key) DO NOTHING
"""
# Copies judged (the handler deletes their rows) or never delivered: not kept longer than a
# parked check-in is.
_FORGET = "DELETE FROM released_checkins WHERE released_at < now() - $1::interval"
_REPLACED_HEADERS = frozenset({"ce_id", "causation_id"})
# $1: how long a check-in waits for a device or a card claims never heard of; $2: for a
# key of a device it knows (a rotation's registration comes within seconds when all is
# well). A cancellation waits as long as a check-in for the same: never less than the
# check-in it cancels, which may wait for the same device.
_EXPIRE = """
WITH due AS (
    SELECT p.event_id, p.kind, d.key_id AS known_key_id FROM parked_checkins p
    LEFT JOIN devices d ON d.device_id = p.device_id
    WHERE p.parked_at < now() - CASE WHEN d.device_id IS NULL OR p.awaiting_card IS NOT NULL
                                     THEN $1::interval ELSE $2::interval END
)
DELETE FROM parked_checkins p USING due WHERE p.event_id = due.event_id AND p.kind = due.kind
RETURNING p.event_id, p.checkin_id, p.device_id, p.correlation_id, p.key, p.headers, p.payload,
          p.source_topic, p.source_partition, p.source_offset, p.parked_at, p.awaiting_key_id,
          due.known_key_id, p.arrived_at, p.awaiting_card IS NOT NULL AS for_card, p.kind
"""
# Expired, they are refused as the handler refuses a check-in it cannot authenticate: kept
# with the reason, so `GET /claims/by-checkin` answers for them, and counted in `/stats`.
_REFUSED = """
INSERT INTO unauthenticated_checkins (event_id, checkin_id, device_id, reason, detail)
SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[])
ON CONFLICT DO NOTHING
"""
# The rows of one check-in still waiting, with the key its device has (null: none yet);
# not its cancellations (another device may sign them).
_WAITING = """
SELECT p.device_id, p.awaiting_key_id, p.parked_at, d.key_id AS known_key_id,
       p.awaiting_card IS NOT NULL AS for_card
FROM parked_checkins p LEFT JOIN devices d ON d.device_id = p.device_id
WHERE p.checkin_id = $1 AND p.kind = 'checkin' ORDER BY p.parked_at
"""
# A rotation's new key reaches claims within seconds; an hour later it is not coming.
KEY_WAIT = timedelta(hours=1)
# The consumer the check-ins came to: their dead letters name it, as if it had refused them
# (the cancellations' name theirs, `claims.cancellations`).
CONSUMER = _SORTS[CHECKIN].consumer


def copy_id(event_id: uuid.UUID, kind: Kind = CHECKIN) -> uuid.UUID:
    """The event id of a parked check-in (or cancellation) put back on its topic."""
    return uuid.uuid5(_SORTS[kind].namespace, str(event_id))


def copy_key(incoming: Incoming[Any], kind: Kind = CHECKIN) -> uuid.UUID | None:
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
    if incoming.envelope.id != copy_id(original, kind):
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
    awaiting_card: str | None = None  # its card number, if it waits for its card
    kind: Kind = CHECKIN

    @classmethod
    def of(
        cls, incoming: Incoming[CheckInRecorded], arrived_at: datetime, for_card: bool = False
    ) -> _Parked:
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
            0 if for_card else c.key_id or 0,  # waiting for its card, its device is known
            arrived_at,
            c.card_number if for_card else None,
        )

    @classmethod
    def cancellation(cls, incoming: Incoming[CheckInCancelled], arrived_at: datetime) -> _Parked:
        c, src = incoming.payload, incoming.source
        return cls(
            incoming.envelope.id,
            c.checkin_id,  # the check-in it cancels
            c.device_id,
            incoming.correlation_id,
            src.key or topics.CHECKIN_CANCELLED.key_of(c),
            [(k, v) for k, v in src.headers if v is not None],
            src.value or b"",
            (src.topic, src.partition, src.offset),
            c.key_id or 0,
            arrived_at,
            None,
            CANCELLATION,
        )


async def park(
    conn: DbConnection,
    checkins: Sequence[tuple[Incoming[CheckInRecorded], datetime]],
    for_card: Sequence[tuple[Incoming[CheckInRecorded], datetime]] = (),
    cancellations: Sequence[tuple[Incoming[CheckInCancelled], datetime]] = (),
) -> None:
    """Inside the batch's transaction, after its other writes: park these check-ins and
    `cancellations` (each with when it reached us) until their device or key comes, and
    those `for_card` until their card comes; or put those whose device, key or card has
    come since the batch read them straight back."""
    if not checkins and not for_card and not cancellations:
        return
    parked = (
        [_Parked.of(i, arrived_at) for i, arrived_at in checkins]
        + [_Parked.of(i, arrived_at, for_card=True) for i, arrived_at in for_card]
        + [_Parked.cancellation(i, arrived_at) for i, arrived_at in cancellations]
    )
    await conn.execute(_LOCK)
    known = await conn.fetchrow(
        _KNOWN,
        list({p.device_id for p in parked if p.awaiting_card is None}),
        list({p.awaiting_card for p in parked if p.awaiting_card is not None}),
    )
    assert known is not None  # a SELECT without FROM always returns its one row
    keys = dict(known["keys"])
    cards = set(known["cards"])

    def ready(p: _Parked) -> bool:
        if p.awaiting_card is not None:
            return p.awaiting_card in cards
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
            [p.awaiting_card for p in waiting],
            [p.kind for p in waiting],
        )
    arrived = [p for p in parked if ready(p)]
    copies = [_copy(p.event_id, p.key, p.headers, p.payload, p.kind) for p in arrived]
    await _remember(conn, copies, [p.arrived_at for p in arrived])
    await enqueue(conn, copies)
    for p in arrived:
        with log_context(correlation_id=p.correlation_id):
            log.info(
                f"parked {_SORTS[p.kind].noun} released: "
                + ("card now known" if p.awaiting_card else "device or key now known"),
                checkin_id=p.checkin_id,
                device_id=p.device_id,
                event_id=copy_id(p.event_id, p.kind),
            )


async def release(
    conn: DbConnection,
    device_ids: Collection[uuid.UUID],
    card_numbers: Collection[str] = (),
) -> int:
    """Inside the transaction that applied these devices' DeviceRegistered and these cards'
    CardIssued, after the rest of its batch: put the check-ins parked for them back on the
    check-in topic, and the cancellations parked for these devices on the cancellation
    topic. Returns how many."""
    if not device_ids and not card_numbers:
        return 0
    await conn.execute(_LOCK)
    rows: list[asyncpg.Record] = []
    if device_ids:
        rows += await conn.fetch(_RELEASE, list(set(device_ids)))
    if card_numbers:
        rows += await conn.fetch(_RELEASE_CARDS, list(set(card_numbers)))
    copies = [
        _copy(
            r["event_id"],
            r["key"],
            headers_from_json(bytes(r["headers"]).decode()),
            r["payload"],
            r["kind"],
        )
        for r in rows
    ]
    await _remember(conn, copies, [r["arrived_at"] for r in rows])
    await enqueue(conn, copies)
    now = datetime.now(UTC)
    for r in rows:
        card = {"card_id": r["card_id"]} if r["card_id"] is not None else {}
        with log_context(correlation_id=r["correlation_id"]):
            log.info(
                f"parked {_SORTS[r['kind']].noun} released: "
                + ("card now known" if card else "device or key now known"),
                checkin_id=r["checkin_id"],
                device_id=r["device_id"],
                **card,
                event_id=copy_id(r["event_id"], r["kind"]),
                parked_s=round((now - r["parked_at"]).total_seconds(), 1),
                arrived_at=r["arrived_at"].isoformat(),
            )
    return len(rows)


async def _remember(
    conn: DbConnection,
    copies: Sequence[OutgoingRecord],
    arrived_at: Sequence[datetime],
    wait_over: bool = False,
) -> None:
    """Keeps when each copy's original reached us, under the copy's inbox key (copy_key),
    and whether its wait is over (its card never came: it is judged without it)."""
    if copies:
        await conn.execute(
            _REMEMBER,
            [inbox_key(uuid.UUID(c.event_id), c.payload) for c in copies],
            list(arrived_at),
            [wait_over] * len(copies),
        )


def _copy(
    event_id: uuid.UUID, key: bytes, headers: Headers, payload: bytes, kind: Kind = CHECKIN
) -> OutgoingRecord:
    """The parked record as it came, under its derived id, caused by the original, back on
    the topic of its kind."""
    new_id = copy_id(event_id, kind)
    kept = [(k, v) for k, v in headers if k not in _REPLACED_HEADERS]
    kept += [("ce_id", str(new_id).encode()), ("causation_id", str(event_id).encode())]
    return OutgoingRecord(
        event_id=str(new_id),
        topic=_SORTS[kind].topic.name,
        key=key,
        headers=kept,
        payload=payload,
        # The id is derived: kept a while after publishing, so the same copy is sent once.
        retain=True,
    )


# Those waiting for a device or a key (something an operator can see to), and apart those
# waiting for a card (mostly mistyped or forged numbers: nothing to see to, unless the card
# projection is stuck, which `consumers_stalled` says), and the cancellations waiting for a
# device or a key.
_FIGURES = """
SELECT count(*) FILTER (WHERE kind = 'checkin' AND awaiting_card IS NULL) AS n,
       extract(epoch FROM now() - min(parked_at)
                                  FILTER (WHERE kind = 'checkin' AND awaiting_card IS NULL))
           AS oldest_s,
       count(DISTINCT checkin_id) FILTER (WHERE awaiting_card IS NOT NULL) AS cards,
       extract(epoch FROM now() - min(parked_at) FILTER (WHERE awaiting_card IS NOT NULL))
           AS cards_oldest_s,
       count(*) FILTER (WHERE kind = 'cancellation') AS cancellations,
       extract(epoch FROM now() - min(parked_at) FILTER (WHERE kind = 'cancellation'))
           AS cancellations_oldest_s
FROM parked_checkins
"""


async def readiness_figures(conn: DbConnection) -> dict[str, Any]:
    """How many wait and the oldest since when: in `GET /health/ready` (so `vtp status` sees
    them) and at the head of `GET /checkins/parked`. `checkins_parked` counts those waiting
    for a device or a key, `checkins_awaiting_card` those waiting for a card, and
    `cancellations_parked` the cancellations waiting for a device or a key."""
    row = await conn.fetchrow(_FIGURES)
    assert row is not None  # an aggregate always returns its one row

    def seconds(value: Any) -> float | None:
        return None if value is None else round(float(value), 1)

    return {
        "checkins_parked": row["n"],
        "checkins_parked_oldest_s": seconds(row["oldest_s"]),
        "checkins_awaiting_card": row["cards"],
        "checkins_awaiting_card_oldest_s": seconds(row["cards_oldest_s"]),
        "cancellations_parked": row["cancellations"],
        "cancellations_parked_oldest_s": seconds(row["cancellations_oldest_s"]),
    }


async def parked_figures(conn: DbConnection, devices_shown: int = 100) -> dict[str, Any]:
    """What waits for its device, per device (the longest waiting first: its check-ins and
    its cancellations), and what waits for its card, per device that scanned it (no card
    numbers): for operators (GET /checkins/parked)."""
    devices = await conn.fetch(
        "SELECT device_id, count(*) FILTER (WHERE kind = 'checkin') AS checkins,"
        " count(*) FILTER (WHERE kind = 'cancellation') AS cancellations,"
        " min(parked_at) AS first_parked_at, max(awaiting_key_id) AS awaiting_key_id"
        " FROM parked_checkins WHERE awaiting_card IS NULL"
        " GROUP BY device_id ORDER BY min(parked_at) LIMIT $1",
        devices_shown,
    )
    for_cards = await conn.fetch(
        "SELECT device_id, count(*) AS checkins, min(parked_at) AS first_parked_at"
        " FROM parked_checkins WHERE awaiting_card IS NOT NULL"
        " GROUP BY device_id ORDER BY min(parked_at) LIMIT $1",
        devices_shown,
    )
    return {
        **await readiness_figures(conn),
        "devices": [
            {
                "device_id": str(d["device_id"]),
                "checkins": d["checkins"],
                "cancellations": d["cancellations"],
                "first_parked_at": d["first_parked_at"].isoformat(),
                # The newest key they say signed them (null: no key said).
                "awaiting_key_id": d["awaiting_key_id"] or None,
            }
            for d in devices
        ],
        "awaiting_card": [
            {
                "device_id": str(d["device_id"]),
                "checkins": d["checkins"],
                "first_parked_at": d["first_parked_at"].isoformat(),
            }
            for d in for_cards
        ],
    }


async def expire(conn: DbConnection, older_than: timedelta, key_wait: timedelta = KEY_WAIT) -> int:
    """Dead-letters the check-ins parked longer than `older_than` for a device claims never
    heard of (`unknown_device`): by then its registration is not on its way, and a check-in
    older than the check-in window could not be approved anyway (judged now, it would be
    `out_of_window`); and those parked longer than `key_wait` for a key of a device it knows
    (`bad_signature`: a key that was never registered signed them). The table stays bounded,
    and an operator sees them in `vtp deadletters list` and `vtp status`; they are kept as
    refused, as the handler keeps a check-in it cannot authenticate. Those parked longer
    than `older_than` for a card claims never heard of authenticated: they are put back
    with their wait over, and the handler rejects them as `unknown_card`, as it did before
    anything waited for a card. Cancellations expire as check-ins waiting for the same do,
    and are dead-lettered with the same reasons under the cancellation consumer's name
    (only dead-lettered: they are no check-in's outcome). The arrivals of copies released
    as long ago go too. Returns how many expired."""
    await conn.execute(_FORGET, older_than)
    expired = await conn.fetch(_EXPIRE, older_than, key_wait)
    cards = [r for r in expired if r["for_card"]]
    await _judge_without_card(conn, cards)
    rows = [r for r in expired if not r["for_card"]]
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
    await enqueue(
        conn,
        [
            dead_letter_record(letter, _SORTS[r["kind"]].consumer)
            for r, letter in zip(rows, letters, strict=True)
        ],
    )
    refused = [(r, x) for r, x in zip(rows, letters, strict=True) if r["kind"] == CHECKIN]
    if refused:
        await conn.execute(
            _REFUSED,
            [r["event_id"] for r, _ in refused],
            [r["checkin_id"] for r, _ in refused],
            [r["device_id"] for r, _ in refused],
            [letter.reason.value for _, letter in refused],
            [letter.detail for _, letter in refused],
        )
    for r, letter in zip(rows, letters, strict=True):
        with log_context(correlation_id=r["correlation_id"]):
            log.warning(
                f"parked {_SORTS[r['kind']].noun} dead-lettered",
                reason=letter.reason.value,
                checkin_id=r["checkin_id"],
                device_id=r["device_id"],
            )
    return len(expired)


async def _judge_without_card(conn: DbConnection, rows: Sequence[asyncpg.Record]) -> None:
    """Puts back the check-ins whose card never came, marked so that the handler judges
    them as they are (`unknown_card`) instead of parking them again."""
    copies = [
        _copy(
            r["event_id"], r["key"], headers_from_json(bytes(r["headers"]).decode()), r["payload"]
        )
        for r in rows
    ]
    await _remember(conn, copies, [r["arrived_at"] for r in rows], wait_over=True)
    await enqueue(conn, copies)
    for r in rows:
        with log_context(correlation_id=r["correlation_id"]):
            log.warning(
                "parked check-in judged without its card: it never came",
                checkin_id=r["checkin_id"],
                device_id=r["device_id"],
                event_id=copy_id(r["event_id"]),
                parked_since=r["parked_at"].isoformat(),
            )


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
    if r["for_card"]:
        # Not the card number: whoever asks has the check-in (and its card) already.
        return (
            f"check-in {checkin_id} has no outcome yet: it waits for its card, which claims"
            f" does not know (its registration, CardIssued, has not reached claims), since"
            f" {since.isoformat()}; it is judged when that comes, and rejected as unknown_card"
            f" if it has not come by {(since + older_than).isoformat()}"
        )
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
    await hourly_in_transaction(
        pool,
        lambda conn: expire(conn, older_than),
        stop,
        failed="expiring parked check-ins failed; tried again in an hour",
    )
