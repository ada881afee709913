"""`vtp device flush` and `vtp device heartbeat`: what the device sends besides a scan."""

from __future__ import annotations

from typing import Any

import typer

from vtp.device.client import DeviceClient
from vtp.device.endpoints import BOOTSTRAP_OPTION
from vtp.device.session import DEVICE_OPTION, run_client
from vtp.device.terminal import emit


def flush(
    device: str | None = DEVICE_OPTION,
    bootstrap: str | None = BOOTSTRAP_OPTION,
    timeout_ms: int = typer.Option(10_000, "--timeout-ms"),
) -> None:
    """Send every buffered check-in, oldest first. Exit code 1 when some are still buffered."""

    async def send(client: DeviceClient) -> dict[str, Any]:
        result = await client.flush()
        return {"sent": result.sent, "buffered": result.remaining}

    outcome = run_client(device, bootstrap, timeout_ms, send)
    emit(outcome)
    if outcome["buffered"]:
        raise typer.Exit(1)


def heartbeat(
    device: str | None = DEVICE_OPTION,
    bootstrap: str | None = BOOTSTRAP_OPTION,
    timeout_ms: int = typer.Option(5000, "--timeout-ms"),
) -> None:
    """Tell the system the device is alive: last counter, buffered count, clock offset."""

    async def send(client: DeviceClient) -> dict[str, Any]:
        sent = await client.send_heartbeat()
        return {"sent": sent, "counter": client.journal.counter, "buffered": client.journal.count()}

    outcome = run_client(device, bootstrap, timeout_ms, send)
    emit(outcome)
    if not outcome["sent"]:
        raise typer.Exit(1)
