"""The device client other device software can embed: scan → journal → send, in order.

    client = DeviceClient(identity, Journal(path), KafkaTransport(bootstrap, client_id=...))
    await client.start()            # background flusher (and heartbeats, if asked)
    client.scan(card_number=..., activity=..., price_cents=...)
    await client.stop()             # one last flush attempt; unsent check-ins stay journaled

A scan never waits for the network: it is signed and stored in the journal, and the
flusher sends the journal oldest first whenever the broker answers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from shared.events.checkins import Activity, CheckInRecorded
from shared.logging import get_logger
from shared.outbox import OutgoingRecord, record_for
from vtp.device.cardscan import card_number_from_scan
from vtp.device.journal import Journal
from vtp.device.signer import DeviceIdentity
from vtp.device.transport import Transport

log = get_logger(__name__)
FLUSH_BATCH = 500


@dataclass(frozen=True)
class FlushResult:
    sent: int
    remaining: int

    @property
    def complete(self) -> bool:
        return self.remaining == 0


class DeviceClient:
    def __init__(
        self,
        identity: DeviceIdentity,
        journal: Journal,
        transport: Transport,
        *,
        flush_interval_s: float = 1.0,
        heartbeat_interval_s: float | None = None,
        clock_offset: Callable[[], Awaitable[int | None]] | None = None,
    ) -> None:
        self.identity = identity
        self.journal = journal
        self.transport = transport
        self.identity.counter = journal.counter
        self._flush_interval_s = flush_interval_s
        self._heartbeat_interval_s = heartbeat_interval_s
        self._clock_offset = clock_offset
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def scan(
        self,
        *,
        card: str,
        activity: Activity,
        price_cents: int,
        occurred_at: datetime | None = None,
    ) -> CheckInRecorded:
        """Sign and journal one check-in; `card` is a card number or a QR payload."""
        card_number = card_number_from_scan(card)
        made: list[CheckInRecorded] = []

        def build(counter: int) -> OutgoingRecord:
            envelope, checkin = self.identity.check_in(
                card_number=card_number,
                activity=activity,
                price_cents=price_cents,
                occurred_at=occurred_at,
                counter=counter,
            )
            made.append(checkin)
            return record_for(envelope, checkin)

        self.journal.append(build)
        self._wake.set()
        return made[0]

    async def flush(self) -> FlushResult:
        """Send the journal oldest first; stop at the first record the broker did not take."""
        async with self._lock:
            sent = 0
            while batch := self.journal.pending(FLUSH_BATCH):
                delivered = await self.transport.send_in_order([p.record for p in batch])
                if delivered:
                    self.journal.acknowledge_through(batch[delivered - 1].seq)
                    sent += delivered
                if delivered < len(batch):
                    break
            return FlushResult(sent, self.journal.count())

    async def send_heartbeat(self) -> bool:
        offset = await self._clock_offset() if self._clock_offset is not None else None
        envelope, heartbeat = self.identity.heartbeat(
            buffered=self.journal.count(), clock_offset_ms=offset
        )
        return await self.transport.send_in_order([record_for(envelope, heartbeat)]) == 1

    async def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name=f"device-{self.identity.device_id}")

    async def stop(self, *, final_flush_timeout_s: float = 5.0) -> FlushResult:
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        try:
            return await asyncio.wait_for(self.flush(), final_flush_timeout_s)
        except TimeoutError:
            return FlushResult(0, self.journal.count())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_heartbeat = loop.time()
        while not self._stop.is_set():
            try:
                result = await self.flush()
                if not result.complete:
                    log.info("broker unreachable, check-ins buffered", buffered=result.remaining)
                if self._heartbeat_interval_s is not None and loop.time() >= next_heartbeat:
                    # Due again one interval later even when this one fails: a failing one
                    # must not turn into a clock measurement (a request) every flush round.
                    next_heartbeat = loop.time() + self._heartbeat_interval_s
                    await self.send_heartbeat()
            except Exception as exc:  # the journal keeps everything; try again next round
                log.warning("flush failed", error=type(exc).__name__, detail=str(exc)[:200])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._flush_interval_s)
            self._wake.clear()
