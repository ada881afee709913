"""The device client other device software can embed: scan → journal → send, in order.

    client = DeviceClient(identity, Journal(path), KafkaTransport(bootstrap, client_id=...))
    await client.start()            # background flusher (and heartbeats, if asked)
    client.scan(card_number=..., activity=..., price_cents=...)
    await client.stop()             # one last flush attempt; unsent check-ins stay journaled

A scan never waits for the network: it is signed and stored in the journal, and the
flusher sends the journal oldest first whenever the broker answers.

With `clock_offset` (a measurement against the cards API, vtp/device/clock.py) the client
measures its clock at `start`, with heartbeats and when `measure_clock` is called, at most
every ten minutes while the clock is right, and keeps the last measurement in the journal.
A scan without an explicit time then signs the corrected time when the clock is off
(`clock_notice` hears of it once), and is refused (`ClockRefused`) when the clock names a
time every claims policy rejects and nothing says how to correct it (vtp/device/scantime.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.events.checkins import (
    Activity,
    CancellationReason,
    CheckInCancelled,
    CheckInRecorded,
)
from shared.logging import get_logger
from shared.outbox import OutgoingRecord, record_for
from vtp.device.cardscan import card_number_from_scan
from vtp.device.clock import boot_anchor, bounded_offset_ms
from vtp.device.journal import Journal
from vtp.device.scantime import (
    EARLIEST_CHECKIN,
    BootAnchor,
    ClockMeasurement,
    ClockRefusal,
    ScanTime,
    correction_notice,
    is_recent,
    measurement_due,
    registered_not_before,
    scan_time,
)
from vtp.device.signer import DeviceIdentity
from vtp.device.transport import Transport

log = get_logger(__name__)
FLUSH_BATCH = 500


class ClockRefused(ValueError):
    """A scan not recorded: the device clock names a time no claims policy accepts and no
    recent measurement says how to correct it. The message is for the staff, in Dutch."""


def device_clock() -> datetime:
    return datetime.now(UTC)


class NoticeOnce:
    """Passes on the first line only: staff need to read that the clock is off once, not
    at every scan (one instance per process, shared by the clients of a simulation)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self.given = False

    def __call__(self, line: str) -> None:
        if not self.given:
            self.given = True
            self._say(line)


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
        clock_notice: Callable[[str], None] | None = None,
        now: Callable[[], datetime] = device_clock,
        boot: Callable[[datetime], BootAnchor | None] = boot_anchor,
    ) -> None:
        """`clock_offset` measures the device clock minus the cards API's in ms (None when
        it cannot); `clock_notice` hears, once, that a scan's time was corrected; `now` is
        the device clock (UTC-aware) and `boot` places a reading of it against the time
        since boot (vtp/device/clock.py)."""
        self.identity = identity
        self.journal = journal
        self.transport = transport
        self.identity.counter = journal.counter
        self._flush_interval_s = flush_interval_s
        self._heartbeat_interval_s = heartbeat_interval_s
        self._clock_offset = clock_offset
        self._clock_notice = NoticeOnce(clock_notice) if clock_notice is not None else None
        self._now = now
        self._boot = boot
        self._measurement = journal.clock_measurement()
        registered = registered_not_before(identity.device_id)
        self._not_before = max(EARLIEST_CHECKIN, registered or EARLIEST_CHECKIN)
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
        """Sign and journal one check-in; `card` is a card number or a QR payload.

        Without `occurred_at` the check-in names the device clock now, corrected by the
        last clock measurement when that says the clock is off (`scan_time`); an explicit
        `occurred_at` is signed as given. ClockRefused when the device clock names an
        impossible time and nothing says how to correct it: nothing is journaled."""
        card_number = card_number_from_scan(card)
        when = self.scan_time(occurred_at)
        if isinstance(when, ClockRefusal):
            raise ClockRefused(when.message())
        made: list[CheckInRecorded] = []

        def build(counter: int) -> OutgoingRecord:
            envelope, checkin = self.identity.check_in(
                card_number=card_number,
                activity=activity,
                price_cents=price_cents,
                occurred_at=when.occurred_at,
                counter=counter,
            )
            made.append(checkin)
            return record_for(envelope, checkin)

        self.journal.append(build)
        self._wake.set()
        if when.source == "corrected" and self._clock_notice is not None:
            self._clock_notice(correction_notice(when.corrected_ms))
        return made[0]

    def cancel(
        self,
        *,
        checkin_id: uuid.UUID,
        card: str,
        reason: CancellationReason,
    ) -> CheckInCancelled:
        """Sign and journal the cancellation of one of this provider's check-ins; `card` is
        its card number or QR payload. Sent with the journal, after what was scanned before
        it (a cancellation of a check-in still in the journal follows it)."""
        envelope, cancellation = self.identity.cancellation(
            checkin_id=checkin_id,
            card_number=card_number_from_scan(card),
            reason=reason,
            cancelled_at=self._now(),
        )
        self.journal.add(record_for(envelope, cancellation))
        self._wake.set()
        return cancellation

    def scan_time(self, occurred_at: datetime | None = None) -> ScanTime | ClockRefusal:
        """The time a check-in scanned now would name (vtp/device/scantime.py)."""
        now = self._now()
        return scan_time(
            now,
            self._measurement,
            explicit=occurred_at,
            boot_now=self._boot(now),
            not_before=self._not_before,
        )

    @property
    def clock_measurement(self) -> ClockMeasurement | None:
        return self._measurement

    async def measure_clock(self) -> ClockMeasurement | None:
        """Measure the clock when due (`measurement_due`: none recent, or the last says the
        clock is off) and keep the measurement in the journal. Returns the last measurement,
        made now or before (None when there never was one); a failed measurement keeps it."""
        now = self._now()
        if self._clock_offset is None or not measurement_due(
            self._measurement, now, self._boot(now)
        ):
            return self._measurement
        try:
            offset = await self._clock_offset()
        except Exception as exc:  # a clock we cannot measure is no reason to stop
            log.warning("clock measurement failed", error=type(exc).__name__)
            offset = None
        if offset is None:
            return self._measurement
        measured_at = self._now().astimezone(UTC)
        measurement = ClockMeasurement(measured_at, offset, self._boot(measured_at))
        self.journal.record_clock(measurement)
        self._measurement = measurement
        return measurement

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
        """Send a heartbeat with the clock's offset, when a recent measurement holds it."""
        measurement = await self.measure_clock()
        now = self._now()
        offset = (
            bounded_offset_ms(measurement.offset_ms)
            if measurement is not None and is_recent(measurement, now, self._boot(now))
            else None
        )
        envelope, heartbeat = self.identity.heartbeat(
            buffered=self.journal.count(), clock_offset_ms=offset
        )
        return await self.transport.send_in_order([record_for(envelope, heartbeat)]) == 1

    async def start(self) -> None:
        await self.measure_clock()
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
