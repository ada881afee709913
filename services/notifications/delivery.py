"""The delivery worker: sends due messages, retries transient failures with exponential
backoff, gives up (status `dead`, with the reason) on permanent ones or after max attempts."""

from __future__ import annotations

import asyncio
import contextlib
from email.message import EmailMessage

import aiosmtplib
import asyncpg

from services.notifications.settings import NotificationsSettings
from shared.db import DbConnection
from shared.logging import get_logger, log_context

log = get_logger(__name__)


class DeliveryWorker:
    def __init__(self, pool: asyncpg.Pool, settings: NotificationsSettings) -> None:
        self._pool = pool
        self._settings = settings
        self._wake = asyncio.Event()

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
                if sent:
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
        finally:
            with contextlib.suppress(Exception):
                await listener.remove_listener("deliveries", self.wake)
                await self._pool.release(listener)

    async def deliver_due(self, limit: int = 50) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT delivery_id, correlation_id, kind, address, subject, body, attempts"
                " FROM deliveries WHERE status = 'pending' AND next_attempt_at <= now()"
                " ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED",
                limit,
            )
            for row in rows:
                with log_context(correlation_id=row["correlation_id"]):
                    await self._send_one(conn, row)
        return len(rows)

    async def _send_one(self, conn: DbConnection, row: asyncpg.Record) -> None:
        message = EmailMessage()
        message["From"] = self._settings.mail_from
        message["To"] = row["address"]
        message["Subject"] = row["subject"]
        message["Message-ID"] = f"<{row['delivery_id']}@vrijetijdspas>"
        message["X-Correlation-ID"] = row["correlation_id"]
        message.set_content(row["body"])
        attempts = row["attempts"] + 1
        try:
            await aiosmtplib.send(
                message,
                hostname=self._settings.smtp_host,
                port=self._settings.smtp_port,
                timeout=self._settings.smtp_timeout_s,
                start_tls=False,
                use_tls=False,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            await self._dead(conn, row, attempts, f"recipient refused: {exc}")
            return
        except (aiosmtplib.SMTPException, OSError) as exc:
            if attempts >= self._settings.max_attempts:
                await self._dead(conn, row, attempts, f"gave up after {attempts} attempts: {exc}")
                return
            delay_s = min(2**attempts, 600)
            await conn.execute(
                "UPDATE deliveries SET attempts = $2, last_error = $3,"
                " next_attempt_at = now() + make_interval(secs => $4) WHERE delivery_id = $1",
                row["delivery_id"],
                attempts,
                str(exc)[:300],
                float(delay_s),
            )
            log.warning(
                "delivery failed, will retry",
                kind=row["kind"],
                attempt=attempts,
                retry_in_s=delay_s,
            )
            return
        await conn.execute(
            "UPDATE deliveries SET status = 'sent', attempts = $2, sent_at = now() WHERE delivery_id = $1",
            row["delivery_id"],
            attempts,
        )
        log.info("notification sent", kind=row["kind"], channel="email", attempt=attempts)

    async def _dead(
        self, conn: DbConnection, row: asyncpg.Record, attempts: int, reason: str
    ) -> None:
        await conn.execute(
            "UPDATE deliveries SET status = 'dead', attempts = $2, last_error = $3 WHERE delivery_id = $1",
            row["delivery_id"],
            attempts,
            reason[:300],
        )
        log.error("notification dead-lettered", kind=row["kind"], reason=reason[:300])
