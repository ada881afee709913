"""`vtp device rotate`: a new key for the device from the cards API, and the check-ins not
sent yet re-signed with it (vtp/device/rotation.py)."""

from __future__ import annotations

import httpx
import typer

from vtp.device import endpoints
from vtp.device.rotation import MaybeRotated, NotRotated, rotate
from vtp.device.session import DEVICE_OPTION, open_device, open_journal
from vtp.device.terminal import emit, say


def _cards_client(url: str, headers: dict[str, str]) -> httpx.Client:
    return httpx.Client(base_url=url, headers=headers, timeout=30)


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
    token: str | None = endpoints.TOKEN_OPTION,
) -> None:
    """Give the device a new key (the cards API's key rotation) and re-sign with it the
    check-ins not sent yet. Stop the device's client first: the rotation does not start
    while a scan, flush or heartbeat of the device runs. Exit code 1 when the cards API
    refused (the old key stays) or its answer was lost (run the command again: it asks
    again with the same Idempotency-Key; the device sends nothing until then)."""
    with open_device(device, rotating=True) as dev:
        if dev.finished is not None:
            # The rotation asked for last time is done now; asking again would be a second.
            say("Geen nieuwe sleutel gevraagd: voer het commando opnieuw uit voor nog een.")
            emit(
                {
                    "device_id": str(dev.file.device_id),
                    "key_id": dev.file.key_id,
                    "resigned": 0,
                    "device_file": str(dev.path),
                    "finished_earlier": True,
                }
            )
            return
        url = endpoints.cards_url(cards_url or dev.file.cards_url)
        headers = endpoints.cards_headers(token, url, "device key rotation")
        journal = open_journal(dev.file)
        try:
            with _cards_client(url, headers) as http:
                outcome = rotate(journal, dev.path, dev.file, http, reason)
        except NotRotated as exc:
            say(f"Sleutelwissel mislukt, de oude sleutel blijft in gebruik: {exc}")
            raise typer.Exit(1) from exc
        except MaybeRotated as exc:
            say(
                f"Sleutelwissel onzeker, geen bruikbaar antwoord van de kaartendienst ({exc})."
                " Voer `vtp device rotate` opnieuw uit: dezelfde aanvraag wordt herhaald. Tot"
                " dan verstuurt het apparaat niets; de check-ins blijven bewaard."
            )
            raise typer.Exit(1) from exc
        finally:
            journal.close()
    if outcome.repeated:
        say("Een eerdere aanvraag zonder antwoord is herhaald.")
    count = f"{outcome.resigned} bewaarde check-in{'' if outcome.resigned == 1 else 's'}"
    say(f"Nieuwe sleutel {outcome.key_id} geïnstalleerd: {count} opnieuw ondertekend.")
    emit(
        {
            "device_id": str(outcome.device_id),
            "key_id": outcome.key_id,
            "resigned": outcome.resigned,
            "device_file": str(outcome.device_file),
            "finished_earlier": False,
        }
    )
