"""One device command's hold on its device: the device file found and loaded, the device's
lock held, a key rotation stopped half-way finished; then its journal and a client that
sends it to the broker and measures the clock against the cards API.

Device files and journals live under `<state>/devices/`. One device's commands may run
side by side, but not beside its key rotation (`<device id>.lock`): they wait for a
rotation to end, and a rotation does not start while they run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import typer

from shared.outbox import OutgoingRecord
from vtp.device.client import DeviceClient, NoticeOnce, device_clock
from vtp.device.clock import measure_clock_offset
from vtp.device.devicefile import DeviceFile, DeviceFileError, find_device_file
from vtp.device.endpoints import bootstrap
from vtp.device.journal import Journal, Rotation
from vtp.device.lock import DeviceBusy, device_lock
from vtp.device.rotation import finish_rotation
from vtp.device.terminal import say
from vtp.device.transport import KafkaTransport, Transport
from vtp.locate import state_folder

T = TypeVar("T")

DEVICE_OPTION = typer.Option(
    None, "--device", help="Device id or device file (default: the only one)."
)
# How long a command waits for a key rotation of its device to end.
ROTATION_WAIT_S = 30.0
# How long a command waits for the cards API's clock: a scan must not hang on it.
CLOCK_TIMEOUT_S = 2.0


def devices_dir() -> Path:
    return state_folder(None) / "devices"


def open_journal(file: DeviceFile) -> Journal:
    return Journal(devices_dir() / f"{file.device_id}.sqlite")


def _load(path: Path) -> DeviceFile:
    try:
        return DeviceFile.load(path)
    except DeviceFileError as exc:
        raise typer.BadParameter(str(exc)) from exc


@dataclass(frozen=True)
class OpenDevice:
    file: DeviceFile
    path: Path
    finished: Rotation | None  # a key rotation that had stopped half-way, finished now
    unanswered: Rotation | None  # a key rotation asked for whose answer was lost


@contextmanager
def open_device(device: str | None, *, rotating: bool = False) -> Iterator[OpenDevice]:
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
            say(
                "Sleutelwissel niet gestart: dit apparaat is in gebruik (scan, flush of"
                " heartbeat). Stop de client van het apparaat en probeer opnieuw."
                if rotating
                else "Apparaat bezet: de sleutel van dit apparaat wordt gewisseld. Er is niets"
                " geregistreerd of verstuurd; probeer zo opnieuw."
            )
            raise typer.Exit(2) from None
        file = _load(path)  # again: a rotation may have just replaced the key
        journal = open_journal(file)
        try:
            staged = journal.rotation()
            file = finish_rotation(journal, path, file)
            unanswered = journal.rotation()
        finally:
            journal.close()
        finished = staged if staged is not None and staged.new_key is not None else None
        if finished is not None:
            say(
                f"Onderbroken sleutelwissel afgewerkt: het apparaat gebruikt nu sleutel"
                f" {file.key_id}."
            )
        yield OpenDevice(file, path, finished, unanswered)


class _HoldBack:
    """Sends nothing: after a key rotation whose answer was lost the device's key may no
    longer be accepted, so its check-ins stay in the journal until the rotation is done."""

    async def send_in_order(self, records: Sequence[OutgoingRecord]) -> int:
        return 0

    async def close(self) -> None:
        return None


@asynccontextmanager
async def _device_client(
    dev: OpenDevice, bootstrap: str, timeout_ms: int
) -> AsyncIterator[DeviceClient]:
    file = dev.file
    journal = open_journal(file)
    transport: Transport
    if dev.unanswered is not None:
        say(
            "Verzenden uitgesteld: een sleutelwissel kreeg geen antwoord van de kaartendienst."
            " Voer `vtp device rotate` opnieuw uit; de check-ins blijven bewaard."
        )
        transport = _HoldBack()
    else:
        transport = KafkaTransport(
            bootstrap, client_id=f"vtp-device-{file.device_id}", request_timeout_ms=timeout_ms
        )
    cards_url = file.cards_url
    now = device_clock  # this module's name, read now: a test may set the clock here

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
            clock_notice=NoticeOnce(say),
            now=now,
        )
    finally:
        await transport.close()
        journal.close()


def run_client(
    device: str | None,
    broker: str | None,
    timeout_ms: int,
    work: Callable[[DeviceClient], Awaitable[T]],
) -> T:
    """`work` done with the device's client, the device held (`open_device`) meanwhile."""

    async def run(dev: OpenDevice) -> T:
        async with _device_client(dev, bootstrap(broker), timeout_ms) as client:
            return await work(client)

    with open_device(device) as dev:
        return asyncio.run(run(dev))
