"""How far the device clock is off, measured against an HTTP server's `Date` header.

Devices' clocks drift (the most common kiosk fault); the check-in window on the server
side tolerates some of it, and the heartbeat reports it so operators see a device going
wrong before its check-ins are rejected. `Date` has whole seconds, so the estimate is good
to about half a second — plenty to see minutes or hours of drift.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx

# The heartbeat's bound on `clock_offset_ms` (shared/events/checkins.py): over 31 years.
MAX_OFFSET_MS = 10**12


def offset_from_date_header(date_header: str, sent: datetime, received: datetime) -> int:
    """Device clock minus server clock in ms (positive: the device runs ahead).

    Held within the heartbeat's bound: a kiosk that booted without a real-time clock
    believes it is 1970, 56 years behind, and is the device whose heartbeat must get out."""
    server = parsedate_to_datetime(date_header).astimezone(UTC) + timedelta(milliseconds=500)
    midpoint = sent + (received - sent) / 2
    offset = round((midpoint - server).total_seconds() * 1000)
    return max(-MAX_OFFSET_MS, min(offset, MAX_OFFSET_MS))


async def measure_clock_offset(
    url: str,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    timeout_s: float = 3.0,
) -> int | None:
    """The offset against `url`, or None when it cannot be reached or sends no date."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
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
    except (TypeError, ValueError):
        return None
