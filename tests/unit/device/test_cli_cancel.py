"""`vtp device cancel`: a cancellation signed with the device key, journaled behind the
check-ins not sent yet and sent like them; refused in Dutch (exit 2, nothing journaled)
when it cannot be right; re-signed by a key rotation."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from typer.testing import CliRunner

from shared import topics
from shared.checkin_signature import canonical_cancellation, public_key_b64, verify
from shared.envelope import parse_headers
from shared.events.checkins import CancellationReason, CheckInCancelled
from vtp.device.cancel_cli import REASON_LABELS
from vtp.device.cli import device_app
from vtp.device.devicefile import DeviceFile
from vtp.device.journal import Journal
from vtp.device.rotation import resigning
from vtp.device.signer import DeviceIdentity

NO_BROKER = ["--bootstrap", "127.0.0.1:1", "--timeout-ms", "300"]
CARD = "6299001234568"
CHECKIN_ID = "0190a3c5-1234-7abc-8def-0123456789ab"


@dataclass
class Device:
    file: DeviceFile
    journal_path: Path


def _raw(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(
        key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    ).decode()


@pytest.fixture
def device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Device:
    monkeypatch.setenv("VTP_STATE_DIR", str(tmp_path))
    key = Ed25519PrivateKey.generate()
    file = DeviceFile(uuid.uuid4(), uuid.uuid4(), _raw(key), public_key_b64(key))
    file.save(tmp_path / "devices")
    return Device(file, tmp_path / "devices" / f"{file.device_id}.sqlite")


def _journaled(device: Device) -> list[CheckInCancelled]:
    if not device.journal_path.exists():
        return []
    journal = Journal(device.journal_path)
    try:
        assert journal.counter == 0  # a cancellation is no check-in: the counter stays
        records = [p.record for p in journal.pending()]
    finally:
        journal.close()
    for r in records:
        assert r.topic == topics.CHECKIN_CANCELLED.name
        assert r.key == CARD.encode()
        assert parse_headers(r.headers).type == topics.CHECKIN_CANCELLED.event_type
    return [CheckInCancelled.model_validate_json(r.payload) for r in records]


def test_a_cancellation_with_the_broker_away_is_signed_and_kept_in_the_journal(
    device: Device,
) -> None:
    result = CliRunner().invoke(
        device_app, ["cancel", CHECKIN_ID, "--reason", "scanned_twice", "--card", CARD, *NO_BROKER]
    )
    assert result.exit_code == 0, result.output
    assert "Annulering bewaard, nog niet verstuurd" in result.stderr
    assert '"sent": false' in result.stdout
    [cancellation] = _journaled(device)
    assert cancellation.checkin_id == uuid.UUID(CHECKIN_ID)
    assert (cancellation.device_id, cancellation.provider_id) == (
        device.file.device_id,
        device.file.provider_id,
    )
    assert cancellation.reason is CancellationReason.SCANNED_TWICE
    assert verify(
        device.file.public_key, canonical_cancellation(cancellation), cancellation.signature
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ([CHECKIN_ID, "--reason", "klant was ziek", "--card", CARD], "onbekende reden"),
        (["12345", "--reason", "other", "--card", CARD], "geen check-in-id"),
        ([CHECKIN_ID, "--reason", "other", "--card", "6299001234567"], "controlecijfer"),
    ],
)
def test_a_cancellation_that_cannot_be_right_is_refused_in_dutch_and_not_journaled(
    device: Device, args: list[str], said: str
) -> None:
    result = CliRunner().invoke(device_app, ["cancel", *args, *NO_BROKER])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Annulering niet geregistreerd: ")
    assert said in result.stderr
    assert "Traceback" not in result.output
    assert _journaled(device) == []


def test_the_help_lists_every_reason_code_with_its_dutch_label() -> None:
    assert set(REASON_LABELS) == set(CancellationReason)
    result = CliRunner().invoke(device_app, ["cancel", "--help"], terminal_width=400)
    assert result.exit_code == 0
    flat = " ".join(result.stdout.replace("│", " ").split())
    for code, label in REASON_LABELS.items():
        assert f"{code.value} = {label}" in flat


def test_a_key_rotation_re_signs_a_journaled_cancellation(device: Device) -> None:
    CliRunner().invoke(
        device_app, ["cancel", CHECKIN_ID, "--reason", "other", "--card", CARD, *NO_BROKER]
    )
    [before] = _journaled(device)
    new_key = Ed25519PrivateKey.generate()
    identity = DeviceIdentity(device.file.device_id, device.file.provider_id, new_key, key_id=2)
    journal = Journal(device.journal_path)
    try:
        assert journal.rewrite_pending(resigning(identity)) == 1
    finally:
        journal.close()
    [after] = _journaled(device)
    assert after.model_dump(exclude={"signature", "key_id"}) == before.model_dump(
        exclude={"signature", "key_id"}
    )
    assert after.key_id == 2
    assert verify(public_key_b64(new_key), canonical_cancellation(after), after.signature)
    assert not verify(device.file.public_key, canonical_cancellation(after), after.signature)
