"""The outbox relay: claims unpublished rows, publishes them, then deletes them (or, for
rows that must be remembered, marks them published).

Rows are claimed with FOR UPDATE SKIP LOCKED in commit-visible order, so two relays of
one service never publish the same row at the same time, and a crash after the send but
before the delete only publishes again (consumers deduplicate on the event id).

Each commit's notification names the seq range of its rows, and a pass reads only the
ranges notified since the last one. Reading from the start of the index of unpublished
rows would step over every row published since the last vacuum: a bitmap scan never
marks those entries dead, and between vacuums (a minute apart by default) a busy outbox
collects tens of thousands (4-6 ms a pass at 17,000). A sweep of all rows still runs at
start, when idle, after a failure and every `sweep_interval_s`: for notifications lost
while the listening connection was down, and rows another relay claimed but never
published.

Retained rows are forgotten once `retention` is over, every `cleanup_interval_s`, apart
from the publishing: a failed clean-up is reported and tried again later, it never holds
back a pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Protocol

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.kafka import RecordsRefused
from shared.logging import get_logger
from shared.metrics import RelayMetrics
from shared.outbox import NOTIFY_CHANNEL, OutgoingRecord, committed_range, headers_from_json

log = get_logger(__name__)

_PENDING = """
    SELECT seq, event_id, topic, key, headers, payload FROM outbox
    WHERE published_at IS NULL AND parked_at IS NULL {within} ORDER BY seq LIMIT $1
    FOR UPDATE SKIP LOCKED
"""
_SWEEP = _PENDING.format(within="")
# Only retained rows are ever marked published; the partial index `outbox_published`
# holds just those (migration 0002), so this reads them and not the whole table.
FORGET_PUBLISHED = "DELETE FROM outbox WHERE published_at < now() - $1::interval"
_IN_RANGE = _PENDING.format(within="AND seq BETWEEN $2 AND $3")
# Deleting costs a fraction of rewriting the row as published; only the rows that dedupe a
# derived event id (dead letters) stay, marked, for `retention`.
_SENT = """
    WITH published AS (
        DELETE FROM outbox WHERE seq = ANY($1::bigint[]) AND NOT retain
    )
    UPDATE outbox SET published_at = now() WHERE seq = ANY($1::bigint[]) AND retain
"""
_PARK = "UPDATE outbox SET parked_at = now(), parked_reason = $2 WHERE seq = $1"


class RecordSender(Protocol):
    async def send_all(self, records: Sequence[OutgoingRecord]) -> None:
        """Send every record and return only when the broker acknowledged them all."""


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        sender: RecordSender,
        *,
        batch_size: int = 1000,
        poll_interval_s: float = 1.0,
        retention: timedelta = timedelta(hours=1),
        sweep_interval_s: float = 10.0,
        cleanup_interval_s: float = 60.0,
        metrics: RelayMetrics | None = None,
    ) -> None:
        self._pool = pool
        self._metrics = metrics
        self._sender = sender
        self._batch_size = batch_size
        self._poll_interval_s = poll_interval_s
        self._retention = retention
        self._sweep_interval_s = sweep_interval_s
        self._cleanup_interval_s = cleanup_interval_s
        self._cleaned_at = time.monotonic()
        self._wake = asyncio.Event()
        self._notified: tuple[int, int] | None = None  # seq range committed since a pass
        self._sweep_wanted = True
        self._swept_at = 0.0
        self._listen_conn: PoolConnectionProxy[asyncpg.Record] | None = None
        self._on_listen_lost: Callable[[object], None] | None = None  # its termination listener
        self.published = 0

    async def publish_pending(self, seqs: tuple[int, int] | None = None) -> int:
        """One pass: publish up to a batch of rows, of all rows or those with a seq in the
        range `seqs` (both ends included). Returns how many were published."""
        async with self._pool.acquire() as conn, conn.transaction():
            if seqs is None:
                rows = await conn.fetch(_SWEEP, self._batch_size)
            else:
                rows = await conn.fetch(_IN_RANGE, self._batch_size, *seqs)
            if not rows:
                return 0
            records = [
                OutgoingRecord(
                    event_id=str(r["event_id"]),
                    topic=r["topic"],
                    key=bytes(r["key"]),
                    headers=headers_from_json(r["headers"]),
                    payload=bytes(r["payload"]),
                )
                for r in rows
            ]
            try:
                await self._sender.send_all(records)
            except RecordsRefused as refused:
                seqs_of = {str(r["event_id"]): int(r["seq"]) for r in rows}
                return await self._set_aside(conn, refused, seqs_of)
            await conn.execute(_SENT, [r["seq"] for r in rows])
        self.published += len(rows)
        return len(rows)

    async def _set_aside(
        self,
        conn: PoolConnectionProxy[asyncpg.Record],
        refused: RecordsRefused,
        seqs_of: dict[str, int],
    ) -> int:
        """Park the records the broker will never take, so that the rows after them go out.
        When it refused a batch of several, each is offered alone: those it takes are
        published, those it refuses parked — so every such pass moves on. The pass's other
        rows go in the next one, at once (sent again if they went out: consumers dedupe)."""
        parked: list[tuple[OutgoingRecord, str]] = []
        sent: list[OutgoingRecord] = []
        if len(refused.records) == 1:
            parked.append((refused.records[0], refused.reason))
        else:
            for record in refused.records:
                try:
                    await self._sender.send_all([record])
                    sent.append(record)
                except RecordsRefused as alone:
                    parked.append((record, alone.reason))
        await conn.execute(_SENT, [seqs_of[r.event_id] for r in sent])
        await conn.executemany(_PARK, [(seqs_of[r.event_id], why) for r, why in parked])
        if self._metrics is not None:
            self._metrics.parked(len(parked))  # like the log lines: rare, for a person
        for record, why in parked:
            log.error(
                "outbox record parked",
                seq=seqs_of[record.event_id],
                event_id=record.event_id,
                topic=record.topic,
                payload_bytes=len(record.payload),
                reason=why,
            )
        self.published += len(sent)
        self._sweep_wanted = True
        self._wake.set()
        return len(sent)

    async def run(self, stop: asyncio.Event) -> None:
        # Stopping wakes the relay, so that it lets go of its connections at once rather
        # than at its next poll (a pool closing waits for them).
        stopped = asyncio.ensure_future(stop.wait())
        stopped.add_done_callback(lambda _: self._wake.set())
        try:
            backoff = 0.1
            while not stop.is_set():
                # Cleared before the pass, not after: a notification that arrives during the
                # pass (rows committed after our SELECT) wakes the next one at once.
                self._wake.clear()
                await self._keep_listening()
                seqs, self._notified = self._notified, None
                if (
                    self._sweep_wanted
                    or time.monotonic() - self._swept_at >= self._sweep_interval_s
                ):
                    seqs = None  # a sweep, which covers any range notified too
                if seqs is None:
                    self._sweep_wanted, self._swept_at = False, time.monotonic()
                try:
                    published = await self.publish_pending(seqs)
                    if self._metrics is not None:
                        self._metrics.passed(published)
                    backoff = 0.1
                    await self._cleanup_when_due()
                    if published >= self._batch_size:
                        # A full batch: more are waiting, drain before sleeping.
                        if seqs is None:
                            self._sweep_wanted = True
                        else:
                            self._notify_range(seqs)
                        continue
                except Exception as exc:
                    # Database or broker down: wait and try again; nothing is lost, rows stay.
                    if self._metrics is not None:
                        self._metrics.failed()
                    log.warning(
                        "outbox relay retrying",
                        error=type(exc).__name__,
                        detail=str(exc)[:200],
                        backoff_s=backoff,
                    )
                    self._sweep_wanted = True
                    await _sleep_or_stop(stop, backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                sweep_due_in = self._swept_at + self._sweep_interval_s - time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._wake.wait(), max(0.0, min(self._poll_interval_s, sweep_due_in))
                    )
        finally:
            stopped.cancel()
        await self._unlisten()

    async def forget_published(self) -> int:
        """Delete the retained rows published longer than `retention` ago; returns how many."""
        async with self._pool.acquire() as conn:
            status = await conn.execute(FORGET_PUBLISHED, self._retention)
        return int(status.split()[-1])  # "DELETE <rows>"

    async def _cleanup_when_due(self) -> None:
        if time.monotonic() - self._cleaned_at < self._cleanup_interval_s:
            return
        self._cleaned_at = time.monotonic()
        try:
            forgotten = await self.forget_published()
        except Exception as exc:  # the rows stay until the next time; publishing goes on
            log.warning("outbox cleanup failed", error=type(exc).__name__, detail=str(exc)[:200])
            return
        if forgotten:
            log.info("retained outbox rows forgotten", rows=forgotten)

    async def _keep_listening(self) -> None:
        """LISTEN on a connection of the relay's own, again if the one it had was lost (a
        database restart, a failover, its server process ended): asyncpg then hands it
        back to the pool, and notifications sent meanwhile reached nobody, so a sweep
        follows. Asking such a connection anything raises: it is not asked after that."""
        conn = self._listen_conn
        if conn is not None:
            try:
                closed = conn.is_closed()
            except asyncpg.InterfaceError:  # handed back to the pool already
                self._listen_lost(conn)
            else:
                if not closed:
                    return
                self._listen_lost(conn)  # closed without asyncpg telling us: given back
                with contextlib.suppress(Exception):
                    await self._pool.release(conn)
        try:
            conn = await self._pool.acquire()
        except Exception as exc:  # the poll still works without notifications
            log.warning("outbox listen failed", error=type(exc).__name__)
            return
        lost = functools.partial(self._listen_lost, conn)
        try:
            conn.add_termination_listener(lost)
            await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
        except Exception as exc:
            log.warning("outbox listen failed", error=type(exc).__name__)
            with contextlib.suppress(Exception):
                conn.remove_termination_listener(lost)
                await self._pool.release(conn)
            return
        self._listen_conn, self._on_listen_lost = conn, lost

    def _listen_lost(self, conn: object, *_: object) -> None:
        if self._listen_conn is not conn:
            return
        self._listen_conn = self._on_listen_lost = None
        self._sweep_wanted = True
        self._wake.set()

    async def _unlisten(self) -> None:
        conn, lost = self._listen_conn, self._on_listen_lost
        self._listen_conn = self._on_listen_lost = None
        if conn is not None:
            with contextlib.suppress(Exception):
                if lost is not None:
                    conn.remove_termination_listener(lost)
                await conn.remove_listener(NOTIFY_CHANNEL, self._on_notify)
                await self._pool.release(conn)

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        seqs = committed_range(payload) if isinstance(payload, str) else None
        if seqs is None:
            self._sweep_wanted = True
        else:
            self._notify_range(seqs)
        self._wake.set()

    def _notify_range(self, seqs: tuple[int, int]) -> None:
        """Add `seqs` to the range the next pass reads: one range spanning all of them
        (what lies between is other commits' rows, mostly published already)."""
        if self._notified is not None:
            seqs = (min(seqs[0], self._notified[0]), max(seqs[1], self._notified[1]))
        self._notified = seqs


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
