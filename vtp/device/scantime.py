"""The time a check-in names, when the device clock is wrong: corrected, or refused.

Pure: no clock is read and nothing is fetched here. The device measures how far its clock
is off (vtp/device/clock.py: the cards API's HTTP `Date` header), keeps the last
measurement in its journal, and at each scan asks `scan_time` which `occurred_at` to sign:

- an explicit time (`vtp device scan --at`) is what the user said: never changed;
- a fresh, believable measurement that says the clock is off by more than `TOLERANCE`
  gives the corrected time, device clock minus offset (the cards API's clock);
- otherwise the device clock as it is, unless that is a time every possible claims policy
  rejects as `out_of_window` (a kiosk that booted without a real-time clock thinks it is
  1970): then the scan is refused, because nothing could come of it but a rejected claim.

Claims judges a check-in by `occurred_at` (docs/device-protocol.md section 8): more than
300 s ahead of its clock rejects it for good as `in_the_future`; older than the window
(30 days by default) as `out_of_window`; in between it is priced and limited by the day it
names. So a clock minutes ahead loses the holder the refund, and one hours behind books the
visit on the wrong day.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

# The `Date` header has whole seconds (the estimate is good to about half a second, plus
# half the round trip): an offset smaller than this is no evidence of a wrong clock.
NOISE_FLOOR = timedelta(seconds=2)
# Offsets up to this are left alone: claims allows 300 s ahead, and a clock this close
# books a visit on the wrong day only in the last half minute before midnight. Correcting
# smaller offsets would mix two clocks into one device's times for nothing.
TOLERANCE = timedelta(seconds=30)
# How long a measurement describes the clock. A quartz clock drifts at most ~50 ppm, about
# 4 s a day, far inside TOLERANCE; what makes an old offset wrong is a clock that was set
# (by NTP, by a person, by a reboot), and that is caught apart from age (`still_true`).
# Past a day a device is assumed to have been restarted or re-synchronised anyway.
FRESH_FOR = timedelta(hours=24)
# Measure again when the last measurement is older than this (or says the clock is off:
# the staff may have set it right since). One `GET /health/live`, so at most a few an hour.
MEASURE_EVERY = timedelta(minutes=10)
# A clock set by more than this since the measurement (seen from the time since boot, when
# the platform tells it) voids the measurement: it no longer describes this clock.
STEP_LIMIT = timedelta(seconds=2)
# The longest check-in window any claims policy may have (services/claims/policy.py:
# `checkin_window_days` at most 366). A device does not know which window its municipality
# chose; a time older than this before a moment known to have passed is rejected by all.
LONGEST_WINDOW = timedelta(days=366)
# No Vrijetijdspas check-in happened before this (protocol v1 dates from 2026): a lower
# bound of the true time that needs no network.
EARLIEST_CHECKIN = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class BootAnchor:
    """Where the device clock stood against the time since boot: `wall_minus_boot_ms` only
    changes when the clock is set (drift and NTP slewing move both alike)."""

    boot_id: str
    wall_minus_boot_ms: int


@dataclass(frozen=True)
class ClockMeasurement:
    """One measurement: the device clock when it was made (a wall-clock time, meaningful to
    another process) and the device clock minus the cards API's clock."""

    measured_at: datetime
    offset_ms: int
    boot: BootAnchor | None = None

    @property
    def offset(self) -> timedelta:
        return timedelta(milliseconds=self.offset_ms)

    @property
    def server_time(self) -> datetime:
        """The cards API's time at the measurement: the true time has passed it since."""
        return self.measured_at - self.offset


@dataclass(frozen=True)
class ScanTime:
    occurred_at: datetime
    source: Literal["explicit", "device", "corrected"]
    # Device clock minus the time used (the measured offset) when corrected; else 0.
    corrected_ms: int = 0


@dataclass(frozen=True)
class ClockRefusal:
    """The device clock names a time no claims policy accepts, and no fresh measurement
    says how to correct it."""

    device_time: datetime
    not_before: datetime  # a moment the true time is known to have passed

    def message(self) -> str:
        return (
            f"de klok van dit toestel staat op {_dutch_time(self.device_time)}, onmogelijk"
            f" (het is zeker na {_dutch_time(self.not_before)}), en de kaartendienst kon ze"
            " niet nakijken. Zet de klok juist of verbind het toestel met het netwerk en"
            " scan opnieuw."
        )


def still_true(
    last: ClockMeasurement, local_now: datetime, boot_now: BootAnchor | None = None
) -> bool:
    """Whether `last` still describes the device clock: at most FRESH_FOR old by that
    clock, the clock not set back since (a negative age), and — when both the measurement
    and now have a boot anchor — the same boot, with the clock not set since."""
    age = local_now - last.measured_at
    if age < timedelta(0) or age > FRESH_FOR:
        return False
    if last.boot is not None and boot_now is not None:
        if last.boot.boot_id != boot_now.boot_id:
            return False  # a restart: a clock without a battery starts again at 1970
        stepped = abs(boot_now.wall_minus_boot_ms - last.boot.wall_minus_boot_ms)
        if timedelta(milliseconds=stepped) > STEP_LIMIT:
            return False
    return True


def is_off(last: ClockMeasurement, tolerance: timedelta = TOLERANCE) -> bool:
    """Whether the measurement says the clock is off by more than `tolerance` (never less
    than what the `Date` header can show)."""
    return abs(last.offset) > max(tolerance, NOISE_FLOOR)


def is_recent(
    last: ClockMeasurement | None, local_now: datetime, boot_now: BootAnchor | None = None
) -> bool:
    """Whether `last` still holds and is less than MEASURE_EVERY old: recent enough to be
    reported in a heartbeat as the clock's offset now."""
    return (
        last is not None
        and still_true(last, local_now, boot_now)
        and local_now - last.measured_at < MEASURE_EVERY
    )


def measurement_due(
    last: ClockMeasurement | None, local_now: datetime, boot_now: BootAnchor | None = None
) -> bool:
    """Whether to ask the cards API again: no recent measurement that still holds, or one
    that says the clock is off (the staff may have set it right since: a correction must
    not outlive the fault while the cards API can be asked)."""
    return last is None or not is_recent(last, local_now, boot_now) or is_off(last)


def scan_time(
    local_now: datetime,
    last: ClockMeasurement | None,
    *,
    explicit: datetime | None = None,
    boot_now: BootAnchor | None = None,
    not_before: datetime = EARLIEST_CHECKIN,
    tolerance: timedelta = TOLERANCE,
) -> ScanTime | ClockRefusal:
    """The `occurred_at` of a check-in scanned now, or why none can be recorded.

    `local_now` is the device clock; `last` its latest measurement; `not_before` a moment
    the true time is known to have passed (besides the measurement's server time), such as
    the device's registration."""
    if explicit is not None:
        return ScanTime(explicit, "explicit")
    if last is not None and still_true(last, local_now, boot_now):
        if is_off(last, tolerance):
            return ScanTime(local_now - last.offset, "corrected", last.offset_ms)
        return ScanTime(local_now, "device")
    floor = max(not_before, last.server_time) if last is not None else not_before
    if local_now < floor - LONGEST_WINDOW:
        return ClockRefusal(local_now, floor)
    return ScanTime(local_now, "device")


def registered_not_before(device_id: uuid.UUID) -> datetime | None:
    """When the cards API registered the device, read from its id: the cards API gives
    devices a UUIDv7, whose first 48 bits are its clock's Unix milliseconds. None for an id
    of another version (no time in it)."""
    if device_id.version != 7:
        return None
    return datetime.fromtimestamp((device_id.int >> 80) / 1000, UTC)


def correction_notice(offset_ms: int) -> str:
    """The line for the staff when the time of a check-in was corrected (in Dutch)."""
    direction = "voor" if offset_ms > 0 else "achter"
    return (
        f"Let op: de klok van dit toestel loopt {dutch_duration(abs(offset_ms))} {direction};"
        " de tijd van de check-in is verbeterd naar die van de kaartendienst. Laat de klok"
        " van het toestel juist zetten."
    )


def dutch_duration(ms: int) -> str:
    seconds = round(ms / 1000)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} u {minutes} min" if minutes else f"{hours} u"
    return f"{hours // 24} dagen"


def _dutch_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%d-%m-%Y %H:%M UTC")
