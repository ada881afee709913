"""How far the device clock is off, measured against an HTTP server's `Date` header.

Devices' clocks drift (the most common kiosk fault); the check-in window on the server
side tolerates some of it, the heartbeat reports it so operators see a device going wrong
before its check-ins are rejected, and the device corrects the time of its check-ins by it
(vtp/device/scantime.py). `Date` has whole seconds, so the estimate is good to about half a
second — plenty to see minutes or hours of drift.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx

from vtp.device.scantime import BootAnchor

# The heartbeat's bound on `clock_offset_ms` (shared/events/checkins.py): over 31 years.
MAX_OFFSET_MS = 10**12


def offset_from_date_header(date_header: str, sent: datetime, received: datetime) -> int:
    """Device clock minus server clock in ms (positive: the device runs ahead), however
    large: what corrects a time. A heartbeat carries it `bounded_offset_ms`."""
    server = parsedate_to_datetime(date_header).astimezone(UTC) + timedelta(milliseconds=500)
    midpoint = sent + (received - sent) / 2
    return round((midpoint - server).total_seconds() * 1000)


def bounded_offset_ms(offset_ms: int) -> int:
    """An offset as a heartbeat can carry it. A kiosk that booted without a real-time clock
    believes it is 1970, 56 years behind, and is the device whose heartbeat must get out."""
    return max(-MAX_OFFSET_MS, min(offset_ms, MAX_OFFSET_MS))


async def measure_clock_offset(
    url: str,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    timeout_s: float = 3.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> int | None:
    """The offset against `url` (not bounded: `offset_from_date_header`), or None when
    it cannot be reached or sends no date."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s, transport=transport) as client:
            sent = clock()
            response = await client.get(url)
            received = clock()
    except httpx.HTTPError:
        return None
    date_header = response.headers.get("date")
    if not date_header:
        return None
    try:
        return offset_from_date_header(date_header, sent, received)
    except (TypeError, ValueError, OverflowError):
        return None


def boot_anchor(wall: datetime) -> BootAnchor | None:
    """The device clock `wall` (read just now) against the time since boot, where the
    platform tells both (Linux); None elsewhere. Lets a later process see that the clock
    was set, or the device restarted, since a measurement."""
    boot_id = _boot_id()
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    if boot_id is None or boottime is None:
        return None
    since_boot_ms = time.clock_gettime_ns(boottime) // 1_000_000
    wall_ms = round(wall.timestamp() * 1000)
    return BootAnchor(boot_id, wall_ms - since_boot_ms)


@functools.cache
def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None
