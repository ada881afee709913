"""`vtp device …`: register a device, scan, flush the journal, send a heartbeat, rotate the
device's key, simulate load.

Where things are: device files and journals under `<state>/devices/`; the broker and the
cards API from the options, else `KAFKA_BOOTSTRAP_SERVERS`, else the stack `vtp up` runs.
One device's commands may run side by side, but not beside its key rotation (`<device
id>.lock`): they wait for a rotation to end, and a rotation does not start while they run.

`scan` and `heartbeat` first measure the device clock against the cards API (when the last
measurement, kept in the journal, is not recent or says the clock is off); `scan` signs the
corrected time when the clock is off, and says so on stderr (vtp/device/scantime.py).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import httpx
import typer
from pydantic import ValidationError

from shared.events.checkins import Activity, ActivityCategory
from shared.outbox import OutgoingRecord
from vtp.device.cardscan import NotACard
from vtp.device.client import ClockRefused, DeviceClient, NoticeOnce
from vtp.device.clock import measure_clock_offset
from vtp.device.devicefile import DeviceFile, DeviceFileError, find_device_file
from vtp.device.journal import Journal, Rotation
from vtp.device.lock import DeviceBusy, device_lock
from vtp.device.rotation import MaybeRotated, NotRotated, finish_rotation, rotate
from vtp.device.simulate import random_card_numbers, register_devices, simulate
from vtp.device.transport import KafkaTransport, Transport
from vtp.locate import state_folder

device_app = typer.Typer(help="A provider's check-in device.", no_args_is_help=True)

TOKEN_OPTION = typer.Option(
    None, "--token", envvar="VTP_CARDS_TOKEN", help="Cards API bearer token."
)
DEVICE_OPTION = typer.Option(
    None, "--device", help="Device id or device file (default: the only one)."
)
BOOTSTRAP_OPTION = typer.Option(None, "--bootstrap", help="Kafka bootstrap servers.")
# How long a command waits for a key rotation of its device to end.
ROTATION_WAIT_S = 30.0
# How long a command waits for the cards API's clock: a scan must not hang on it.
CLOCK_TIMEOUT_S = 2.0


def devices_dir() -> Path:
    return state_folder(None) / "devices"


def _running() -> dict[str, Any]:
    from vtp.devstack.stack import read_running_stack

    return read_running_stack(state_folder(None)) or {}


def _bootstrap(option: str | None) -> str:
    found = (
        option or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or _running().get("bootstrap_servers")
    )
    if not found:
        raise typer.BadParameter(
            "no broker: pass --bootstrap, set KAFKA_BOOTSTRAP_SERVERS or run `vtp up`"
        )
    return str(found)


def _cards_url(option: str | None) -> str:
    found = option or _running().get("services", {}).get("cards", {}).get("url")
    if not found:
        raise typer.BadParameter("no cards API: pass --cards-url or run `vtp up`")
    return str(found)


def _cards_headers(
    token: str | None, cards_url: str, why: str = "device registration"
) -> dict[str, str]:
    """The cards API wants a bearer token; by default the admin token of the running stack."""
    if token is None:
        from vtp.demo.seed import admin_token

        try:
            token = admin_token(cards_url)
        except RuntimeError as exc:
            raise typer.BadParameter(f"{exc}: pass --token or set VTP_CARDS_TOKEN") from exc
    return {"Authorization": f"Bearer {token}", "X-Audit-Reason": why}


def _cards_client(url: str, headers: dict[str, str]) -> httpx.Client:
    return httpx.Client(base_url=url, headers=headers, timeout=30)


def _device_clock() -> datetime:
    return datetime.now(UTC)


def _say(line: str) -> None:
    typer.echo(line, err=True)


def _emit(data: dict[str, Any]) -> None:
    typer.echo(json.dumps(data, default=str))


def _refuse_scan(reason: str) -> NoReturn:
    """A scan that is not recorded: one Dutch line for the staff and exit code 2 (nothing
    journaled, nothing to send), not a traceback."""
    typer.echo(f"Check-in niet geregistreerd: {reason}", err=True)
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


def _load(path: Path) -> DeviceFile:
    try:
        return DeviceFile.load(path)
    except DeviceFileError as exc:
        raise typer.BadParameter(str(exc)) from exc


def _journal_path(file: DeviceFile) -> Path:
    return devices_dir() / f"{file.device_id}.sqlite"


@dataclass(frozen=True)
class _Device:
    file: DeviceFile
    path: Path
    finished: Rotation | None  # a key rotation that had stopped half-way, finished now
    unanswered: Rotation | None  # a key rotation asked for whose answer was lost


@contextmanager
def _device(device: str | None, *, rotating: bool = False) -> Iterator[_Device]:
    """The device, its lock held (exclusively for a key rotation) and a key rotation that
    stopped half-way finished, before anything reads its key."""
    try:
        path = find_device_file(devices_dir(), device)
    except DeviceFileError as exc:
        raise typer.BadParameter(str(exc)) from exc
    device_id = _load(path).device_id
    with ExitStack() as held:
        try:
            held.enter_context(
                device_lock(
                    devices_dir() / f"{device_id}.lock",
                    exclusive=rotating,
                    wait_s=0 if rotating else ROTATION_WAIT_S,
                )
            )
        except DeviceBusy:
            typer.echo(
                "Sleutelwissel niet gestart: dit apparaat is in gebruik (scan, flush of"
                " heartbeat). Stop de client van het apparaat en probeer opnieuw."
                if rotating
                else "Apparaat bezet: de sleutel van dit apparaat wordt gewisseld. Er is niets"
                " geregistreerd of verstuurd; probeer zo opnieuw.",
                err=True,
            )
            raise typer.Exit(2) from None
        file = _load(path)  # again: a rotation may have just replaced the key
        journal = Journal(_journal_path(file))
        try:
            staged = journal.rotation()
            file = finish_rotation(journal, path, file)
            unanswered = journal.rotation()
        finally:
            journal.close()
        finished = staged if staged is not None and staged.new_key is not None else None
        if finished is not None:
            typer.echo(
                f"Onderbroken sleutelwissel afgewerkt: het apparaat gebruikt nu sleutel"
                f" {file.key_id}.",
                err=True,
            )
        yield _Device(file, path, finished, unanswered)


class _HoldBack:
    """Sends nothing: after a key rotation whose answer was lost the device's key may no
    longer be accepted, so its check-ins stay in the journal until the rotation is done."""

    async def send_in_order(self, records: Sequence[OutgoingRecord]) -> int:
        return 0

    async def close(self) -> None:
        return None


@asynccontextmanager
async def _client(dev: _Device, bootstrap: str, timeout_ms: int) -> AsyncIterator[DeviceClient]:
    file = dev.file
    journal = Journal(_journal_path(file))
    transport: Transport
    if dev.unanswered is not None:
        typer.echo(
            "Verzenden uitgesteld: een sleutelwissel kreeg geen antwoord van de kaartendienst."
            " Voer `vtp device rotate` opnieuw uit; de check-ins blijven bewaard.",
            err=True,
        )
        transport = _HoldBack()
    else:
        transport = KafkaTransport(
            bootstrap, client_id=f"vtp-device-{file.device_id}", request_timeout_ms=timeout_ms
        )
    cards_url = file.cards_url
    now = _device_clock

    async def offset() -> int | None:
        if not cards_url:
            return None
        return await measure_clock_offset(
            f"{cards_url}/health/live", clock=now, timeout_s=CLOCK_TIMEOUT_S
        )

    try:
        yield DeviceClient(
            file.identity(),
            journal,
            transport,
            clock_offset=offset,
            clock_notice=NoticeOnce(_say),
            now=now,
        )
    finally:
        await transport.close()
        journal.close()


@device_app.command()
def register(
    provider: str = typer.Option(..., "--provider", help="The provider id the device belongs to."),
    cards_url: str | None = typer.Option(None, "--cards-url", help="The cards API."),
    token: str | None = TOKEN_OPTION,
) -> None:
    """Register a new device with the cards API and keep its key in a 0600 device file."""
    url = _cards_url(cards_url)
    response = httpx.post(
        f"{url}/providers/{provider}/devices", headers=_cards_headers(token, url), timeout=30
    )
    if response.status_code >= 400:
        raise typer.BadParameter(
            f"registration failed ({response.status_code}): {response.text[:300]}"
        )
    file = DeviceFile.from_registration(response.json(), url)
    path = file.save(devices_dir())
    _emit(
        {
            "device_id": str(file.device_id),
            "provider_id": str(file.provider_id),
            "device_file": str(path),
        }
    )


@device_app.command()
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

    async def run(dev: _Device) -> dict[str, Any]:
        async with _client(dev, _bootstrap(bootstrap), timeout_ms) as client:
            if at is None:
                await client.measure_clock()
            with _refused_scan():
                checkin = client.scan(
                    card=card, activity=what, price_cents=price_cents, occurred_at=at
                )
            result = await client.flush()
            return {
                "checkin_id": str(checkin.checkin_id),
                "counter": checkin.counter,
                "sent": result.sent,
                "buffered": result.remaining,
            }

    with _device(device) as dev:
        _emit(asyncio.run(run(dev)))


@device_app.command()
def flush(
    device: str | None = DEVICE_OPTION,
    bootstrap: str | None = BOOTSTRAP_OPTION,
    timeout_ms: int = typer.Option(10_000, "--timeout-ms"),
) -> None:
    """Send every buffered check-in, oldest first. Exit code 1 when some are still buffered."""

    async def run(dev: _Device) -> dict[str, Any]:
        async with _client(dev, _bootstrap(bootstrap), timeout_ms) as client:
            result = await client.flush()
            return {"sent": result.sent, "buffered": result.remaining}

    with _device(device) as dev:
        outcome = asyncio.run(run(dev))
    _emit(outcome)
    if outcome["buffered"]:
        raise typer.Exit(1)


@device_app.command()
def heartbeat(
    device: str | None = DEVICE_OPTION,
    bootstrap: str | None = BOOTSTRAP_OPTION,
    timeout_ms: int = typer.Option(5000, "--timeout-ms"),
) -> None:
    """Tell the system the device is alive: last counter, buffered count, clock offset."""

    async def run(dev: _Device) -> dict[str, Any]:
        async with _client(dev, _bootstrap(bootstrap), timeout_ms) as client:
            sent = await client.send_heartbeat()
            return {
                "sent": sent,
                "counter": client.journal.counter,
                "buffered": client.journal.count(),
            }

    with _device(device) as dev:
        outcome = asyncio.run(run(dev))
    _emit(outcome)
    if not outcome["sent"]:
        raise typer.Exit(1)


@device_app.command("rotate")
def rotate_command(
    device: str | None = DEVICE_OPTION,
    reason: str = typer.Option(
        "sleutelwissel", "--reason", help="Why (kept in the cards service's audit log)."
    ),
    cards_url: str | None = typer.Option(
        None,
        "--cards-url",
        help="The cards API (default: where the device registered, else the running stack).",
    ),
    token: str | None = TOKEN_OPTION,
) -> None:
    """Give the device a new key (the cards API's key rotation) and re-sign with it the
    check-ins not sent yet. Stop the device's client first: the rotation does not start
    while a scan, flush or heartbeat of the device runs. Exit code 1 when the cards API
    refused (the old key stays) or its answer was lost (run the command again: it asks
    again with the same Idempotency-Key; the device sends nothing until then)."""
    with _device(device, rotating=True) as dev:
        if dev.finished is not None:
            # The rotation asked for last time is done now; asking again would be a second.
            typer.echo(
                "Geen nieuwe sleutel gevraagd: voer het commando opnieuw uit voor nog een.",
                err=True,
            )
            _emit(
                {
                    "device_id": str(dev.file.device_id),
                    "key_id": dev.file.key_id,
                    "resigned": 0,
                    "device_file": str(dev.path),
                    "finished_earlier": True,
                }
            )
            return
        url = _cards_url(cards_url or dev.file.cards_url)
        headers = _cards_headers(token, url, "device key rotation")
        journal = Journal(_journal_path(dev.file))
        try:
            with _cards_client(url, headers) as http:
                outcome = rotate(journal, dev.path, dev.file, http, reason)
        except NotRotated as exc:
            typer.echo(f"Sleutelwissel mislukt, de oude sleutel blijft in gebruik: {exc}", err=True)
            raise typer.Exit(1) from exc
        except MaybeRotated as exc:
            typer.echo(
                f"Sleutelwissel onzeker, geen bruikbaar antwoord van de kaartendienst ({exc})."
                " Voer `vtp device rotate` opnieuw uit: dezelfde aanvraag wordt herhaald. Tot"
                " dan verstuurt het apparaat niets; de check-ins blijven bewaard.",
                err=True,
            )
            raise typer.Exit(1) from exc
        finally:
            journal.close()
    if outcome.repeated:
        typer.echo("Een eerdere aanvraag zonder antwoord is herhaald.", err=True)
    count = f"{outcome.resigned} bewaarde check-in{'' if outcome.resigned == 1 else 's'}"
    typer.echo(
        f"Nieuwe sleutel {outcome.key_id} geïnstalleerd: {count} opnieuw ondertekend.", err=True
    )
    _emit(
        {
            "device_id": str(outcome.device_id),
            "key_id": outcome.key_id,
            "resigned": outcome.resigned,
            "device_file": str(outcome.device_file),
            "finished_earlier": False,
        }
    )


@device_app.command("simulate")
def simulate_command(
    devices: int = typer.Option(10, "--devices", min=1, help="Simulated devices (at most 200)."),
    rate: float = typer.Option(
        50.0, "--rate", help="Check-ins per second, all devices together (at most 2000)."
    ),
    duration: float = typer.Option(10.0, "--duration", help="Seconds to run (at most 600)."),
    provider: str | None = typer.Option(
        None, "--provider", help="Provider of the devices (default: a new one)."
    ),
    cards: Annotated[
        list[str] | None,
        typer.Option("--card", help="Card numbers to scan (default: random, never issued)."),
    ] = None,
    price_cents: int = typer.Option(500, "--price-cents", min=0),
    bootstrap: str | None = BOOTSTRAP_OPTION,
    cards_url: str | None = typer.Option(None, "--cards-url"),
    seed: int = typer.Option(1, "--seed"),
    token: str | None = TOKEN_OPTION,
) -> None:
    """Drive many simulated devices against the local (loopback) broker, then report."""
    import random

    broker = _bootstrap(bootstrap)
    url = _cards_url(cards_url)

    async def run() -> dict[str, Any]:
        files = await register_devices(url, _cards_headers(token, url), provider, devices)
        numbers = cards or random_card_numbers(random.Random(seed), 50)
        report = await simulate(
            broker,
            files,
            rate=rate,
            duration_s=duration,
            cards=numbers,
            price_cents=price_cents,
            seed=seed,
            clock_notice=_say,
        )
        return {**report.__dict__, "rate_per_s": report.rate_per_s}

    try:
        _emit(asyncio.run(run()))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
