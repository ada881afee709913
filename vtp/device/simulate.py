"""Load mode: many simulated devices scanning at a fixed total rate for a fixed time.

Bounded on purpose (device count, rate, duration) and only ever aimed at a broker on this
machine: it is a benchmark and demo tool, not a way to flood a shared cluster.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from shared.events.checkins import Activity, ActivityCategory
from vtp.device.client import DeviceClient, NoticeOnce
from vtp.device.clock import measure_clock_offset
from vtp.device.devicefile import DeviceFile
from vtp.device.journal import Journal
from vtp.device.transport import KafkaTransport

MAX_DEVICES = 200
MAX_RATE_PER_S = 2000.0
MAX_DURATION_S = 600.0
SIMULATED_ACTIVITY = Activity(id="sim-zwembad", category=ActivityCategory.SPORT, name="Zwembad")


class NotLoopback(ValueError):
    """The configured broker is not on this machine."""


@dataclass(frozen=True)
class SimulationReport:
    devices: int
    scanned: int
    sent: int
    still_buffered: int
    elapsed_s: float

    @property
    def rate_per_s(self) -> float:
        return round(self.scanned / self.elapsed_s, 1) if self.elapsed_s else 0.0


def require_loopback(bootstrap_servers: str) -> None:
    for server in bootstrap_servers.split(","):
        host = server.strip().rsplit(":", 1)[0].strip("[]")
        try:
            addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
        except OSError as exc:
            raise NotLoopback(f"cannot resolve broker host {host!r}") from exc
        if not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
            raise NotLoopback(f"broker {server} is not a loopback address; refusing to load it")


def check_bounds(devices: int, rate: float, duration_s: float) -> None:
    if not 1 <= devices <= MAX_DEVICES:
        raise ValueError(f"devices must be between 1 and {MAX_DEVICES}")
    if not 0 < rate <= MAX_RATE_PER_S:
        raise ValueError(f"rate must be above 0 and at most {MAX_RATE_PER_S} per second")
    if not 0 < duration_s <= MAX_DURATION_S:
        raise ValueError(f"duration must be above 0 and at most {MAX_DURATION_S} s")


def random_card_numbers(rng: random.Random, count: int) -> list[str]:
    """Luhn-valid numbers that were never issued: claims rejects them as unknown cards."""
    from stdnum import luhn

    bodies = [f"6298{rng.randrange(10**8):08d}" for _ in range(count)]
    return [b + luhn.calc_check_digit(b) for b in bodies]


async def register_devices(
    cards_url: str, headers: dict[str, str], provider_id: str | None, count: int
) -> list[DeviceFile]:
    async with httpx.AsyncClient(base_url=cards_url, timeout=30, headers=headers) as http:
        if provider_id is None:
            response = await http.post(
                "/providers",
                json={"name": "Gesimuleerde aanbieder", "sub_municipality": "Heist-op-den-Berg"},
            )
            response.raise_for_status()
            provider_id = str(response.json()["id"])
        files = []
        for _ in range(count):
            response = await http.post(f"/providers/{provider_id}/devices")
            response.raise_for_status()
            files.append(DeviceFile.from_registration(response.json(), cards_url))
    return files


async def simulate(
    bootstrap_servers: str,
    devices: list[DeviceFile],
    *,
    rate: float,
    duration_s: float,
    cards: list[str],
    price_cents: int = 500,
    seed: int = 1,
    clock_notice: Callable[[str], None] | None = None,
) -> SimulationReport:
    """The simulated devices share this machine's clock: it is measured once against the
    cards API, and a correction of their check-ins' times is told once (`clock_notice`)."""
    require_loopback(bootstrap_servers)
    check_bounds(len(devices), rate, duration_s)
    rng = random.Random(seed)
    cards_url = next((d.cards_url for d in devices if d.cards_url), None)
    offset = (
        await measure_clock_offset(f"{cards_url}/health/live", timeout_s=2.0) if cards_url else None
    )

    async def measured() -> int | None:
        return offset

    notice = NoticeOnce(clock_notice) if clock_notice is not None else None
    transport = KafkaTransport(bootstrap_servers, client_id="vtp-device-simulator")
    total = max(1, int(rate * duration_s))
    with tempfile.TemporaryDirectory(prefix="vtp-sim-") as workdir:
        clients = [
            DeviceClient(
                d.identity(),
                Journal(Path(workdir) / f"{d.device_id}.sqlite", durable=False),
                transport,
                flush_interval_s=0.2,
                clock_offset=measured,
                clock_notice=notice,
            )
            for d in devices
        ]
        for client in clients:
            await client.start()
        started = time.monotonic()
        try:
            for index in range(total):
                due = started + index / rate
                if (wait := due - time.monotonic()) > 0:
                    await asyncio.sleep(wait)
                clients[index % len(clients)].scan(
                    card=rng.choice(cards), activity=SIMULATED_ACTIVITY, price_cents=price_cents
                )
        finally:
            results = [await c.stop() for c in clients]
            elapsed = time.monotonic() - started
            for c in clients:
                c.journal.close()
            await transport.close()
    return SimulationReport(
        devices=len(devices),
        scanned=total,
        sent=total - sum(r.remaining for r in results),
        still_buffered=sum(r.remaining for r in results),
        elapsed_s=round(elapsed, 2),
    )
