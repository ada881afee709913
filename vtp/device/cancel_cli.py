"""`vtp device cancel`: cancel one of the provider's check-ins, signed by this device
(docs/device-protocol.md section 9), journaled and sent like a scan.

The cancellation goes through the device journal, after whatever was scanned before it:
with the broker away it stays there (exit code 0, as a scan; it says so on stderr) and
`vtp device flush`, the next scan or the running client sends it; a key rotation re-signs
it with the new key, as it does the check-ins not sent yet.
"""

from __future__ import annotations

import uuid
from typing import Any, NoReturn

import typer

from shared.events.checkins import CancellationReason
from vtp.device.cardscan import NotACard, card_number_from_scan
from vtp.device.client import DeviceClient
from vtp.device.endpoints import BOOTSTRAP_OPTION
from vtp.device.session import DEVICE_OPTION, run_client
from vtp.device.terminal import emit, say

# What the staff pick from; the card holder reads other words (services/notifications).
REASON_LABELS: dict[CancellationReason, str] = {
    CancellationReason.ACTIVITY_CANCELLED: "de activiteit ging niet door",
    CancellationReason.SCANNED_IN_ERROR: "bij vergissing gescand (verkeerde kaart, geen bezoek)",
    CancellationReason.SCANNED_TWICE: "hetzelfde bezoek twee keer gescand",
    CancellationReason.DID_NOT_ATTEND: "ingecheckt, maar toch niet deelgenomen",
    CancellationReason.REFUNDED_AT_TILL: "de prijs zelf terugbetaald aan de kassa",
    CancellationReason.OTHER: "een andere reden",
}
_REASON_HELP = "Reden (een code, nooit vrije tekst): " + "; ".join(
    f"{code.value} = {label}" for code, label in REASON_LABELS.items()
)


def _refuse(reason: str) -> NoReturn:
    say(f"Annulering niet geregistreerd: {reason}")
    raise typer.Exit(2)


def cancel(
    checkin_id: str = typer.Argument(..., help="Id van de check-in die vervalt."),
    reason: str = typer.Option(..., "--reason", help=_REASON_HELP),
    card: str = typer.Option(
        ..., "--card", help="Kaartnummer van de check-in, of de tekst van de QR-code."
    ),
    device: str | None = DEVICE_OPTION,
    bootstrap: str | None = BOOTSTRAP_OPTION,
    timeout_ms: int = typer.Option(5000, "--timeout-ms", help="How long to try the broker."),
) -> None:
    """Cancel one of this provider's check-ins: the claim is reversed (the refund withdrawn).
    Signed with the device key, journaled, then sent with the journal. Exit code 2 when it
    is refused here (not a check-in id, an unknown reason, a misread card): nothing
    recorded. A cancellation of another provider's check-in is refused by the claims
    service."""
    try:
        target = uuid.UUID(checkin_id)
    except ValueError:
        _refuse(f"'{checkin_id}' is geen check-in-id")
    try:
        code = CancellationReason(reason)
    except ValueError:
        _refuse(
            f"onbekende reden '{reason}'; kies uit: {', '.join(c.value for c in REASON_LABELS)}"
        )
    try:
        card_number = card_number_from_scan(card)
    except NotACard as exc:
        _refuse(str(exc))

    async def send(client: DeviceClient) -> dict[str, Any]:
        client.cancel(checkin_id=target, card=card_number, reason=code)
        result = await client.flush()
        return {
            "checkin_id": str(target),
            "reason": code.value,
            "sent": result.remaining == 0,  # the cancellation is the journal's last record
            "buffered": result.remaining,
        }

    outcome = run_client(device, bootstrap, timeout_ms, send)
    if outcome["sent"]:
        say(f"Annulering verstuurd: {REASON_LABELS[code]}.")
    else:
        say(
            "Annulering bewaard, nog niet verstuurd: de broker is niet bereikbaar. Ze wordt"
            " verstuurd met `vtp device flush` of bij de volgende scan."
        )
    emit(outcome)
