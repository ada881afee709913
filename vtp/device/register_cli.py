"""`vtp device register`: a new device, registered with the cards API."""

from __future__ import annotations

import httpx
import typer

from vtp.device import endpoints
from vtp.device.devicefile import DeviceFile
from vtp.device.session import devices_dir
from vtp.device.terminal import emit


def register(
    provider: str = typer.Option(..., "--provider", help="The provider id the device belongs to."),
    cards_url: str | None = typer.Option(None, "--cards-url", help="The cards API."),
    token: str | None = endpoints.TOKEN_OPTION,
) -> None:
    """Register a new device with the cards API and keep its key in a 0600 device file."""
    url = endpoints.cards_url(cards_url)
    response = httpx.post(
        f"{url}/providers/{provider}/devices",
        headers=endpoints.cards_headers(token, url),
        timeout=30,
    )
    if response.status_code >= 400:
        raise typer.BadParameter(
            f"registration failed ({response.status_code}): {response.text[:300]}"
        )
    file = DeviceFile.from_registration(response.json(), url)
    path = file.save(devices_dir())
    emit(
        {
            "device_id": str(file.device_id),
            "provider_id": str(file.provider_id),
            "device_file": str(path),
        }
    )
