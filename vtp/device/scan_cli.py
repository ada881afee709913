"""`vtp device scan`: one check-in, signed, journaled, and sent if the broker takes it.

It first measures the device clock against the cards API (when the last measurement, kept
in the journal, is not recent or says the clock is off), signs the corrected time when the
clock is off, and says so on stderr (vtp/device/scantime.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from shared.events.checkins import Activity, ActivityCategory
from vtp.device.cardscan import NotACard
from vtp.device.client import ClockRefused, DeviceClient
from vtp.device.endpoints import BOOTSTRAP_OPTION
from vtp.device.session import DEVICE_OPTION, run_client
from vtp.device.terminal import emit, say


def _refuse_scan(reason: str) -> NoReturn:
    """A scan that is not recorded: one Dutch line for the staff and exit code 2 (nothing
    journaled, nothing to send), not a traceback."""
    say(f"Check-in niet geregistreerd: {reason}")
    raise typer.Exit(2)


@contextmanager
def _refused_scan() -> Iterator[None]:
    try:
        yield
    except (NotACard, ClockRefused) as exc:
        _refuse_scan(str(exc))
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
        _refuse_scan(f"ongeldige waarde voor {', '.join(fields)}")


def scan(
    card: str = typer.Option(..., "--card", help="Card number, or the text of the card's QR code."),
    activity: str = typer.Option(..., "--activity", help="Activity id."),
    category: Annotated[ActivityCategory, typer.Option("--category")] = ActivityCategory.CULTURE,
    activity_name: str | None = typer.Option(None, "--activity-name"),
    price_cents: int = typer.Option(..., "--price-cents", min=0, help="Price paid, in cents."),
    at: Annotated[
        datetime | None,
        typer.Option(
            "--at",
            help="Business time (default: the device clock now, corrected when the cards API"
            " says it is off); give a UTC offset. Signed as given, never corrected.",
        ),
    ] = None,
    device: str | None = DEVICE_OPTION,
    bootstrap: str | None = BOOTSTRAP_OPTION,
    timeout_ms: int = typer.Option(5000, "--timeout-ms", help="How long to try the broker."),
) -> None:
    """Sign and journal a check-in, then try to send the journal (it stays buffered if not).
    Exit code 2 when the scan is refused (a misread card, a wrong value, a device clock at
    an impossible time that could not be checked): nothing recorded."""
    if at is not None and at.tzinfo is None:
        # Read as this machine's zone otherwise: a kiosk set to UTC would be hours off.
        _refuse_scan("geef --at met tijdzone, bv. 2026-05-01T14:30:00+02:00")
    with _refused_scan():
        what = Activity(id=activity, category=category, name=activity_name or activity)

    async def check_in(client: DeviceClient) -> dict[str, Any]:
        if at is None:
            await client.measure_clock()
        with _refused_scan():
            checkin = client.scan(card=card, activity=what, price_cents=price_cents, occurred_at=at)
        result = await client.flush()
        return {
            "checkin_id": str(checkin.checkin_id),
            "counter": checkin.counter,
            "sent": result.sent,
            "buffered": result.remaining,
        }

    emit(run_client(device, bootstrap, timeout_ms, check_in))
