"""The delivery worker: sends due messages, retries transient failures with exponential
backoff, gives up (status `dead`, with the reason) on permanent ones or after max attempts.
A dead delivery is also announced to operators on `ops.notification-dead.v1`, through the
outbox in the transaction that marks it dead: the row and the announcement go together.

Due rows are leased in a short transaction (their next attempt is pushed past the lease),
sent outside any transaction, and their outcome recorded afterwards: a slow SMTP server or
webhook never holds database locks, and two workers never send the same row at once.
A crash between sending and recording resends after the lease; the Message-ID and the
webhook-id stay the delivery id so a receiver can recognise the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import httpx

from services.notifications import fallback
from services.notifications.email_channel import Attachment, Email, EmailChannel
from services.notifications.outcomes import (
    SENT,
    Outcome,
    deferred,
    permanent,
    unexpected,
    without_addresses,
)
from services.notifications.printing import PrintableCard, cards_pdf
from services.notifications.settings import NotificationsSettings
from services.notifications.signals import retry_delay_s
from services.notifications.webhooks import WebhookChannel, endpoint_of
from shared import topics
from shared.db import DbConnection
from shared.envelope import Envelope, new_envelope
from shared.events.notifications import NotificationDeadLettered
from shared.logging import get_logger, log_context
from shared.metrics import Deliveries
from shared.outbox import enqueue_events

log = get_logger(__name__)
SOURCE = "/vrijetijdspas/notifications"
# Requests in flight to one partner's endpoint at once.
WEBHOOKS_PER_PARTNER = 8
_PARTNER_FAILED = "not tried: the partner's endpoint failed earlier in this pass"


def dead_lettered(
    row: asyncpg.Record, attempts: int, reason: str, at: datetime
) -> tuple[Envelope, NotificationDeadLettered]:
    """The operators' event for a delivery given up, under the delivery's correlation id."""
    payload = NotificationDeadLettered(
        delivery_id=row["delivery_id"],
        kind=row["kind"],
        recipient=row["recipient"],
        channel=row["channel"],
        reason=without_addresses(reason)[:300],
        attempts=attempts,
        dead_at=at,
    )
    envelope = new_envelope(
        type=topics.NOTIFICATION_DEAD.event_type,
        source=SOURCE,
        subject=str(row["delivery_id"]),
        correlation_id=row["correlation_id"],
    )
    return envelope, payload


def attachments_of(payload: dict[str, Any]) -> tuple[Attachment, ...]:
    """Printable cards travel as one PDF (a page per card) with the message that announces them."""
    cards = payload.get("cards") or []
    if not cards:
        return ()
    printable = [
        PrintableCard(c["card_number"], date.fromisoformat(c["eligible_until"])) for c in cards
    ]
    name = f"vrijetijdspas-{cards[0]['card_number']}.pdf" if len(cards) == 1 else "kaarten.pdf"
    return (Attachment(name, cards_pdf(printable)),)


class DeliveryWorker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: NotificationsSettings,
        deliveries: Deliveries | None = None,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._deliveries = deliveries  # what attempts came to, counted once per pass
        self._wake = asyncio.Event()
        self.email = EmailChannel(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_timeout_s,
            settings.mail_from,
            sessions=settings.smtp_sessions,
        )
        self.webhooks = WebhookChannel(settings.webhook_master_secret, settings.webhook_timeout_s)
        # Long enough for a whole pass of slow sends; only a crashed worker's rows wait it out.
        self.lease_s = 3 * max(settings.smtp_timeout_s, settings.webhook_timeout_s) + 30
        # Passes in a row in which a partner's endpoint failed, by endpoint (an endpoint
        # leaves this map at its first pass without a failure).
        self._partner_failures: dict[str, int] = {}

    def wake(self, *_: object) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        listener = await self._pool.acquire()
        await listener.add_listener("deliveries", self.wake)
        try:
            while not stop.is_set():
                try:
                    sent = await self.deliver_due()
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("delivery pass failed", error=type(exc).__name__)
                    sent = 0
                except Exception as exc:
                    # A bug must not end the worker: then nobody hears from us any more.
                    log.error(
                        "delivery pass failed unexpectedly",
                        error=f"{type(exc).__name__}: {without_addresses(str(exc))}"[:300],
                    )
                    sent = 0
                if sent:
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
        finally:
            with contextlib.suppress(Exception):
                await listener.remove_listener("deliveries", self.wake)
                await self._pool.release(listener)

    async def deliver_due(self, limit: int = 400) -> int:
        """One pass: lease due rows, send them, record what happened. Returns rows tried."""
        async with self._pool.acquire() as conn, conn.transaction():
            # The earliest due rows, read in index order until the limit. Statistics lag a
            # table that grows by thousands of rows a second, and with too few rows
            # expected PostgreSQL chose a bitmap scan instead: every due row read and
            # sorted (on disk) for each lease: 40-77 ms a lease behind a backlog of 77,000,
            # against 0.4 ms in index order (`EXPLAIN ANALYZE` after a benchmark run).
            await conn.execute("SET LOCAL enable_bitmapscan = off")
            rows = await conn.fetch(
                "UPDATE deliveries d SET next_attempt_at = now() + make_interval(secs => $2)"
                " FROM (SELECT delivery_id FROM deliveries WHERE status = 'pending'"
                "       AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT $1"
                "       FOR UPDATE SKIP LOCKED) due"
                " WHERE d.delivery_id = due.delivery_id"
                " RETURNING d.delivery_id, d.correlation_id, d.kind, d.recipient, d.channel,"
                " d.address, d.subject, d.body, d.attempts, d.language, d.payload",
                limit,
                float(self.lease_s),
            )
        if not rows:
            return 0
        outcomes = await self._send(rows)
        sent = [r for r, o in zip(rows, outcomes, strict=True) if o.sent]
        # The sent ones (nearly all) in one statement, committed on their own: whatever
        # happens to the failures' bookkeeping, what went out is not sent again.
        async with self._pool.acquire() as conn:
            await conn.execute(
                "UPDATE deliveries d SET status = 'sent', attempts = s.attempts, sent_at = now(),"
                " last_error = NULL FROM unnest($1::uuid[], $2::int[]) AS s(delivery_id, attempts)"
                " WHERE d.delivery_id = s.delivery_id",
                [r["delivery_id"] for r in sent],
                [r["attempts"] + 1 for r in sent],
            )
        if self._deliveries is not None and sent:
            self._deliveries.count((r["channel"], "sent") for r in sent)
        failed = []
        for row, outcome in zip(rows, outcomes, strict=True):
            if outcome.sent:
                with log_context(correlation_id=row["correlation_id"]):
                    log.info("notification sent", **_fields(row))
            else:
                failed.append((row, outcome))
        if failed:
            statuses = []
            async with self._pool.acquire() as conn, conn.transaction():
                for row, outcome in failed:
                    with log_context(correlation_id=row["correlation_id"]):
                        statuses.append((row["channel"], await self._record(conn, row, outcome)))
            if self._deliveries is not None:
                self._deliveries.count((c, s) for c, s in statuses if s is not None)
        return len(rows)

    async def _send(self, rows: list[asyncpg.Record]) -> list[Outcome]:
        """One outcome per row, whatever happens: a failure is its delivery's alone."""
        outcomes: dict[Any, Outcome] = {}
        emails: list[tuple[asyncpg.Record, Email]] = []
        hooks = [r for r in rows if r["channel"] == "webhook"]
        for row in rows:
            if row["channel"] == "email":
                try:
                    emails.append((row, self._email(row)))
                except Exception as exc:  # e.g. a payload whose cards cannot be printed
                    outcomes[row["delivery_id"]] = _unexpected(row, exc)
            elif row["channel"] != "webhook":
                outcomes[row["delivery_id"]] = permanent(f"channel {row['channel']} is batched")
        if emails:
            try:
                results = await self.email.send_all([e for _, e in emails])
            except Exception as exc:
                results = [_unexpected(r, exc) for r, _ in emails]
            outcomes |= {r["delivery_id"]: o for (r, _), o in zip(emails, results, strict=True)}
        if hooks:
            results = await self._webhooks(hooks)
            outcomes |= {r["delivery_id"]: o for r, o in zip(hooks, results, strict=True)}
        return [outcomes[r["delivery_id"]] for r in rows]

    async def _webhooks(self, rows: list[asyncpg.Record]) -> list[Outcome]:
        """Each partner's endpoint on its own, a few requests at a time: no connection pool
        is shared between partners, so one that hangs never makes another's requests wait
        (and time out). Once a request to an endpoint fails in a way worth retrying, the
        rest of its deliveries are not tried in this pass: they wait with the partner,
        without counting as tries, and the pass lasts one timeout, not one per delivery."""
        by_endpoint: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            by_endpoint.setdefault(endpoint_of(row["address"]), []).append(i)
        outcomes: list[Outcome] = [SENT] * len(rows)
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=32)
        async with httpx.AsyncClient(limits=limits) as client:
            await asyncio.gather(
                *(
                    self._endpoint(client, endpoint, [(i, rows[i]) for i in indexes], outcomes)
                    for endpoint, indexes in by_endpoint.items()
                )
            )
        return outcomes

    async def _endpoint(
        self,
        client: httpx.AsyncClient,
        endpoint: str,
        rows: list[tuple[int, asyncpg.Record]],
        outcomes: list[Outcome],
    ) -> None:
        gate = asyncio.Semaphore(WEBHOOKS_PER_PARTNER)
        failing = False

        async def one(i: int, row: asyncpg.Record) -> None:
            nonlocal failing
            async with gate:
                if failing:
                    outcomes[i] = deferred(_PARTNER_FAILED, self._partner_wait_s(endpoint))
                    return
                outcome = await self._webhook(client, row)
                outcomes[i] = outcome
                if not outcome.sent and not outcome.permanent and not failing:
                    failing = True
                    self._partner_failures[endpoint] = self._partner_failures.get(endpoint, 0) + 1

        await asyncio.gather(*(one(i, row) for i, row in rows))
        if not failing:
            self._partner_failures.pop(endpoint, None)
            return
        waiting = [row for i, row in rows if outcomes[i].deferred_s is not None]
        if waiting:
            log.warning(
                "partner failing: its other webhooks wait",
                recipients=sorted({row["recipient"] for row in waiting}),
                waiting=len(waiting),
                retry_in_s=self._partner_wait_s(endpoint),
            )

    def _partner_wait_s(self, endpoint: str) -> float:
        """How long a failing partner's untried deliveries wait: its own backoff, which
        grows with each pass in a row in which it failed."""
        return retry_delay_s(
            self._partner_failures.get(endpoint, 1),
            self._settings.retry_base_s,
            self._settings.retry_max_s,
        )

    def _email(self, row: asyncpg.Record) -> Email:
        return Email(
            message_id=str(row["delivery_id"]),
            to=row["address"],
            subject=row["subject"],
            body=row["body"],
            correlation_id=row["correlation_id"],
            language=row["language"],
            attachments=attachments_of(_payload(row)),
        )

    async def _webhook(self, client: httpx.AsyncClient, row: asyncpg.Record) -> Outcome:
        try:
            payload = {k: v for k, v in _payload(row).items() if k != "cards"}
            return await self.webhooks.send(
                client,
                url=row["address"],
                recipient=row["recipient"],
                message_id=str(row["delivery_id"]),
                kind=row["kind"],
                payload=payload,
            )
        except Exception as exc:
            return _unexpected(row, exc)

    async def _record(
        self, conn: DbConnection, row: asyncpg.Record, outcome: Outcome
    ) -> str | None:
        """A failed attempt: retried later, or given up. The error is stored as the outcome
        carries it, masked and cut (outcomes.py): GET /deliveries lists it. Returns what
        it came to (`retry`, `dead`; None: the row was no longer pending)."""
        if outcome.deferred_s is not None:
            await conn.execute(
                "UPDATE deliveries SET last_error = $2,"
                " next_attempt_at = now() + make_interval(secs => $3)"
                " WHERE delivery_id = $1 AND status = 'pending'",
                row["delivery_id"],
                outcome.error,
                outcome.deferred_s,
            )
            return "retry"  # not counted as a try: its partner failed (_webhooks)
        attempts = row["attempts"] + 1
        fields = _fields(row)
        error = outcome.error
        if outcome.permanent or attempts >= self._settings.max_attempts:
            reason = error if outcome.permanent else f"gave up after {attempts} attempts: {error}"
            # Only a pending row dies (not one skipped meanwhile because its holder was
            # erased), and only once: the announcement follows the one real transition.
            died = await conn.fetchval(
                "UPDATE deliveries SET status = 'dead', attempts = $2, last_error = $3"
                " WHERE delivery_id = $1 AND status = 'pending' RETURNING true",
                row["delivery_id"],
                attempts,
                reason[:300],
            )
            if not died:
                return None
            await enqueue_events(conn, [dead_lettered(row, attempts, reason, datetime.now(UTC))])
            log.error("notification dead-lettered", reason=reason, **fields)
            # Refused for good or out of attempts: a card holder's message goes by letter.
            if fallback.applies(row):
                await self._fall_back(conn, row, outcome)
            return "dead"
        delay_s = retry_delay_s(attempts, self._settings.retry_base_s, self._settings.retry_max_s)
        await conn.execute(
            "UPDATE deliveries SET attempts = $2, last_error = $3,"
            " next_attempt_at = now() + make_interval(secs => $4) WHERE delivery_id = $1",
            row["delivery_id"],
            attempts,
            error,
            delay_s,
        )
        log.warning("delivery failed, will retry", error=error, retry_in_s=delay_s, **fields)
        return "retry"

    async def _fall_back(self, conn: DbConnection, row: asyncpg.Record, outcome: Outcome) -> None:
        """A card holder's e-mail was given up: a letter, the referrer told (fallback.py).
        In a savepoint: should that fail, the delivery is still recorded dead (and
        announced), and the other failures of the pass are recorded too."""
        try:
            async with conn.transaction():
                await fallback.email_failed(
                    conn, row, outcome, _payload(row), self._settings.private_key
                )
        except Exception as exc:
            log.error(
                "no letter instead of a failed e-mail",
                delivery_id=str(row["delivery_id"]),
                error=type(exc).__name__,
            )


def _fields(row: asyncpg.Record) -> dict[str, Any]:
    return {"kind": row["kind"], "channel": row["channel"], "attempt": row["attempts"] + 1}


def _unexpected(row: asyncpg.Record, exc: Exception) -> Outcome:
    """Counted as the delivery's failed attempt; logged with its id for the operators."""
    outcome = unexpected(exc)
    log.error(
        "delivery failed unexpectedly",
        delivery_id=str(row["delivery_id"]),
        error=outcome.error,
        **_fields(row),
    )
    return outcome


def _payload(row: asyncpg.Record) -> dict[str, Any]:
    value = row["payload"]
    parsed = json.loads(value) if isinstance(value, str) else value
    return parsed if isinstance(parsed, dict) else {}
