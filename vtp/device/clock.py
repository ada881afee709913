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


def offset_from_date_header(date_header: str, sent: datetime, received: datetime) -> int:
    """Device clock minus server clock in ms (positive: the device runs ahead)."""
    server = parsedate_to_datetime(date_header).astimezone(UTC) + timedelta(milliseconds=500)
    midpoint = sent + (received - sent) / 2
    return round((midpoint - server).total_seconds() * 1000)


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
