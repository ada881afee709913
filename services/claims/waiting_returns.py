"""Returns that come before their settlement wait for it.

Finance reports the bank's answers on three topics (payments.payment-settled.v1,
-failed.v1, -returned.v1), read by one consumer but from different partitions: after an
outage of claims both backlogs are read in any order, and a redelivery can bring a return
again before the settlement it undoes. Finance sends a return only for a payment its book
has as settled, so the settlement is on its way (often in the same status file). A
PaymentReturned of a payment claims has as `requested`, of the payment's amount, is
therefore kept here in its batch's transaction — as it came, no dead letter, no change to
the payment — and applied by payments.py in the transaction that applies the payment's
PaymentSettled, after it: the payment becomes `returned`, the `payment_returned` transfer
is booked, the claims are unlinked for the next run. A PaymentFailed of the payment instead
(it can then never be returned) dead-letters the waiting return as `unmatched` in its own
transaction, as it was before; so does `expire` for one still waiting after `WAIT` (a
settlement that never came: refused itself, or never sent).

A return of a payment claims does not have at all is dead-lettered at once, as before: a
payment is created by claims' own payment run, in the transaction that enqueues its
PaymentRequested, so finance cannot answer a payment before claims has it, and waiting
would only delay the dead letter. The same holds for a PaymentSettled or PaymentFailed:
they never come before their payment, and nothing waits for one.

Exactly once: the consumer's inbox took the return's key in the transaction that keeps it
here, so a replay of it is a duplicate; the row is deleted in the transaction that applies
(or refuses) it, so it is applied once, and the payment's status makes any later copy a
repeat. The return keeps its place among the holder's bank answers (which decides whether
a card holder's refunds are held for the account's sake, payments._hold_reasons): applied,
its `returned_at` is when claims read it, as if the settlement had been read first.

A settlement and its return applied at the same time by two processes (two partitions):
the return locks its payment's row before it decides to wait. The settlement's update waits
for that lock, and its look for waiting returns, a statement after, sees the row; or the
return's lock waits for the settlement's commit and reads the payment settled, and applies
at once.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.claims.background import hourly_in_transaction
from shared import topics
from shared.consumer import Incoming
from shared.db import DbConnection
from shared.deadletter import DeadLetter, DeadLetterReason, SourceRecord, dead_letter_record
from shared.envelope import parse_headers
from shared.events.payments import PaymentReturned
from shared.inbox import inbox_key
from shared.logging import get_logger, log_context
from shared.outbox import enqueue, headers_from_json, headers_to_json

log = get_logger(__name__)

# The consumer that reads finance's answers: a return that waited in vain is dead-lettered
# in its name, as if it had refused it at once.
CONSUMER = "claims.settlements"
# A settlement comes with or right after its return: its wait is over once it is read, and
# an outage of claims does not count (the clock starts when claims reads the return). A
# week leaves time to redrive a settlement that failed in the handler (`handler_error`).
WAIT = timedelta(days=7)

_KEEP = """
INSERT INTO waiting_returns (record_key, payment_id, correlation_id, key, headers, payload,
                             source_topic, source_partition, source_offset)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (record_key) DO NOTHING
"""
_COLUMNS = (
    "w.payment_id, w.correlation_id, w.key, w.headers, w.payload, w.source_topic,"
    " w.source_partition, w.source_offset, w.waiting_since"
)
_TAKE = f"DELETE FROM waiting_returns w WHERE w.payment_id = $1 RETURNING {_COLUMNS}"  # noqa: S608 - literal columns
_EXPIRE = f"""
WITH due AS (
    DELETE FROM waiting_returns w WHERE w.waiting_since < now() - $1::interval
    RETURNING {_COLUMNS}
)
SELECT due.*, p.status FROM due LEFT JOIN payments p USING (payment_id)
ORDER BY due.waiting_since, due.source_offset
"""  # noqa: S608 - literal columns
_FIGURES = """
SELECT count(*) AS n, extract(epoch FROM now() - min(waiting_since)) AS oldest_s
FROM waiting_returns
"""


@dataclass(frozen=True)
class Waited:
    """A return that waited, as it came, and since when."""

    incoming: Incoming[PaymentReturned]
    since: datetime


async def keep(conn: DbConnection, incoming: Incoming[PaymentReturned]) -> None:
    """In the batch's transaction, with the payment's row locked: the return waits for its
    payment's settlement."""
    src, e = incoming.source, incoming.payload
    await conn.execute(
        _KEEP,
        inbox_key(incoming.envelope.id, src.value or b""),
        e.payment_id,
        incoming.correlation_id,
        src.key or topics.PAYMENT_RETURNED.key_of(e),
        headers_to_json([(k, v) for k, v in src.headers if v is not None]).encode(),
        src.value or b"",
        src.topic,
        src.partition,
        src.offset,
    )
    log.info(
        "payment return waits for its settlement",
        payment_id=str(e.payment_id),
        amount_cents=e.amount_cents,
        reason_code=e.reason_code,
    )


async def take(conn: DbConnection, payment_id: uuid.UUID) -> list[Waited]:
    """In the transaction that closes the payment (settled or failed): the returns that
    waited for it, in the order they were read, no longer waiting."""
    rows = await conn.fetch(_TAKE, payment_id)
    return [
        _waited(r) for r in sorted(rows, key=lambda r: (r["waiting_since"], r["source_offset"]))
    ]


def _waited(r: Any) -> Waited:
    headers = headers_from_json(bytes(r["headers"]).decode())
    source = SourceRecord(
        r["source_topic"],
        r["source_partition"],
        r["source_offset"],
        bytes(r["key"]),
        bytes(r["payload"]),
        headers,
    )
    payload = PaymentReturned.model_validate_json(bytes(r["payload"]))
    return Waited(Incoming(parse_headers(headers), payload, source), r["waiting_since"])


async def expire(conn: DbConnection, older_than: timedelta = WAIT) -> int:
    """Dead-letters as `unmatched` the returns that waited longer than `older_than` for a
    settlement that did not come (its payment is still requested): the table stays
    bounded, and finance's answer is for a person to look at, as it was before anything
    waited. Returns how many."""
    rows = await conn.fetch(_EXPIRE, older_than)
    letters = [
        DeadLetter(
            w.incoming.source,
            DeadLetterReason.UNMATCHED,
            f"the payment is {r['status']}, not settled: only a settled payment can be"
            f" returned; no settlement came while the return waited for one, since"
            f" {w.since.isoformat()}",
        )
        for r in rows
        for w in [_waited(r)]
    ]
    await enqueue(conn, [dead_letter_record(letter, CONSUMER) for letter in letters])
    for r in rows:
        with log_context(correlation_id=r["correlation_id"]):
            log.warning(
                "waiting payment return dead-lettered: its settlement never came",
                payment_id=str(r["payment_id"]),
                status=r["status"],
                waiting_since=r["waiting_since"].isoformat(),
            )
    return len(rows)


async def figures(conn: DbConnection) -> dict[str, Any]:
    """How many returns wait for their settlement, and the oldest since when (seconds): in
    `GET /health/ready` and `GET /stats`. Above zero for long, a settlement did not come
    (see the dead letters of `claims.settlements`)."""
    row = await conn.fetchrow(_FIGURES)
    assert row is not None  # an aggregate always returns its one row
    oldest = row["oldest_s"]
    return {
        "returns_waiting": row["n"],
        "returns_waiting_oldest_s": None if oldest is None else round(float(oldest), 1),
    }


async def expire_hourly(
    pool: asyncpg.Pool, stop: asyncio.Event, older_than: timedelta = WAIT
) -> None:
    await hourly_in_transaction(
        pool,
        lambda conn: expire(conn, older_than),
        stop,
        failed="expiring waiting payment returns failed; tried again in an hour",
    )
