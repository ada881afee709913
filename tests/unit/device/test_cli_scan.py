"""`vtp device scan` as the staff at the till meet it: a scan that cannot be recorded says
why in one Dutch line, exits 2 and journals nothing; no traceback."""

from __future__ import annotations

import base64
import socket
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from typer.testing import CliRunner

from shared.checkin_signature import public_key_b64
from vtp.device.cli import device_app
from vtp.device.devicefile import DeviceFile
from vtp.device.journal import Journal


@pytest.fixture
def device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registered device; its journal's path."""
    monkeypatch.setenv("VTP_STATE_DIR", str(tmp_path))
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    file = DeviceFile(
        uuid.uuid4(), uuid.uuid4(), base64.b64encode(raw).decode(), public_key_b64(key)
    )
    file.save(tmp_path / "devices")
    return tmp_path / "devices" / f"{file.device_id}.sqlite"


def _closed_port() -> int:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--card", "6299001234567"], "het kaartnummer klopt niet (controlecijfer)"),
        (["--card", "hallo"], "geen kaartnummer gevonden"),
        (["--card", "6299001234568", "--price-cents", "10000001"], "price_cents"),
        (["--card", "6299001234568", "--activity", "zwembad 1"], "id"),
        (["--card", "6299001234568", "--at", "2026-05-01T14:30:00"], "tijdzone"),
    ],
)
def test_a_scan_that_cannot_be_recorded_is_refused_in_dutch_with_exit_code_2(
    device: Path, args: list[str], said: str
) -> None:
    defaults = {"--activity": "zwembad", "--price-cents": "450"}
    for option, value in defaults.items():
        if option not in args:
            args = [*args, option, value]
    result = CliRunner().invoke(
        device_app, ["scan", *args, "--bootstrap", f"127.0.0.1:{_closed_port()}"]
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Check-in niet geregistreerd: ")
    assert said in result.stderr
    assert "Traceback" not in result.output
    assert "6299001234567" not in result.output
    if device.exists():
        journal = Journal(device)
        assert (journal.counter, journal.count()) == (0, 0)
        journal.close()


@pytest.mark.parametrize("option", ["--bootstrap-servers", "--bootstrap"])
def test_the_broker_is_named_as_in_every_vtp_command_or_as_before(
    device: Path, option: str
) -> None:
    """With the broker away, the check-in waits in the journal: either name reaches it."""
    broker = [option, f"127.0.0.1:{_closed_port()}", "--timeout-ms", "300"]
    scan = ["scan", "--card", "6299001234568", "--activity", "zwembad", "--price-cents", "450"]
    result = CliRunner().invoke(device_app, [*scan, *broker])
    assert result.exit_code == 0, result.output
    journal = Journal(device)
    assert journal.count() == 1
    journal.close()
