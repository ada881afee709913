"""`vtp device rotate` against a stand-in for the cards API (httpx MockTransport, at the HTTP
boundary): the new key is installed, the check-ins not yet sent are re-signed with it, a lost
answer is asked for again with the same Idempotency-Key, a refusal keeps the old key, and a
rotation stopped half-way is finished by the next command, never done twice."""

from __future__ import annotations

import asyncio
import base64
import errno
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from typer.testing import CliRunner

from shared.checkin_signature import canonical_checkin, public_key_b64, verify
from shared.events.checkins import Activity, ActivityCategory, CheckInRecorded
from tests.support.device_broker import FakeBroker
from vtp.device import rotate_cli, rotation, session
from vtp.device.cli import device_app
from vtp.device.client import DeviceClient
from vtp.device.devicefile import DeviceFile
from vtp.device.journal import Journal
from vtp.device.lock import device_lock

CARDS_URL = "http://cards.test"
# Never contacted: the transport is replaced by a stand-in, or held back.
NO_BROKER = ["--bootstrap", "127.0.0.1:1"]
# A scan at the swimming pool, with the broker away: journaled, not sent.
SCAN = [
    "scan",
    "--card",
    "6299000000002",
    "--activity",
    "zwembad",
    "--price-cents",
    "1",
    *NO_BROKER,
]
ACTIVITY = Activity(id="zwembad", category=ActivityCategory.SPORT, name="Zwembad")


def _seed_b64(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return base64.b64encode(raw).decode()


class FakeCards:
    """POST /devices/{id}/rotate as the cards API documents it: a new key pair, key_id + 1,
    and for an Idempotency-Key seen before the first answer again."""

    def __init__(self, file: DeviceFile) -> None:
        self.file = file
        self.key_id = file.key_id or 1
        self.answers: dict[str, dict[str, object]] = {}
        self.requests: list[httpx.Request] = []
        self.refuse = False
        self.lose_answers = False

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = request.headers["Idempotency-Key"]
        if key not in self.answers:
            if self.refuse:
                return httpx.Response(409, json={"detail": "device is revoked"})
            self.key_id += 1
            private = Ed25519PrivateKey.generate()
            self.answers[key] = {
                "device_id": str(self.file.device_id),
                "provider_id": str(self.file.provider_id),
                "key_id": self.key_id,
                "public_key": public_key_b64(private),
                "private_key": _seed_b64(private),
            }
        if self.lose_answers:
            raise httpx.ReadTimeout("the answer was lost")
        return httpx.Response(200, json=self.answers[key])

    def client(self, url: str, headers: dict[str, str]) -> httpx.Client:
        return httpx.Client(
            base_url=url, headers=headers, transport=httpx.MockTransport(self.handle)
        )


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VTP_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(rotation, "BACKOFF_S", 0.0)
    return tmp_path / "devices"


@pytest.fixture
def device(state: Path) -> Iterator[DeviceFile]:
    """A registered device: one check-in sent, two still in its journal."""
    key = Ed25519PrivateKey.generate()
    file = DeviceFile(
        uuid.uuid4(), uuid.uuid4(), _seed_b64(key), public_key_b64(key), CARDS_URL, key_id=1
    )
    file.save(state)
    broker = FakeBroker()
    client = DeviceClient(file.identity(), Journal(state / f"{file.device_id}.sqlite"), broker)

    async def scan_three() -> None:
        for index in range(3):
            client.scan(card="6299001234568", activity=ACTIVITY, price_cents=100 + index)
            await client.flush()
            broker.up = False

    asyncio.run(scan_three())
    assert client.journal.count() == 2
    client.journal.close()
    yield file


@pytest.fixture
def cards(device: DeviceFile, monkeypatch: pytest.MonkeyPatch) -> FakeCards:
    fake = FakeCards(device)
    monkeypatch.setattr(rotate_cli, "_cards_client", fake.client)
    return fake


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> FakeBroker:
    up = FakeBroker()
    monkeypatch.setattr(session, "KafkaTransport", lambda *_, **__: up)
    return up


def _journal(state: Path, file: DeviceFile) -> Journal:
    return Journal(state / f"{file.device_id}.sqlite")


def _pending(state: Path, file: DeviceFile) -> list[CheckInRecorded]:
    journal = _journal(state, file)
    try:
        return [CheckInRecorded.model_validate_json(p.record.payload) for p in journal.pending()]
    finally:
        journal.close()


def _signed_by(checkins: list[CheckInRecorded], public_key: str) -> bool:
    return all(verify(public_key, canonical_checkin(c), c.signature) for c in checkins)


def _rotate(*args: str) -> tuple[int, dict[str, object] | None, str]:
    result = CliRunner().invoke(device_app, ["rotate", "--token", "t0k3n", *args])
    emitted = json.loads(result.stdout) if result.stdout.strip() else None
    return result.exit_code, emitted, result.stderr


def test_rotate_installs_the_new_key_and_re_signs_the_check_ins_not_sent(
    state: Path, device: DeviceFile, cards: FakeCards
) -> None:
    before = _pending(state, device)
    code, emitted, said = _rotate("--reason", "tablet verloren")

    assert code == 0, said
    assert "Nieuwe sleutel 2 geïnstalleerd: 2 bewaarde check-ins opnieuw ondertekend." in said
    assert emitted is not None and (emitted["key_id"], emitted["resigned"]) == (2, 2)
    [request] = cards.requests
    assert str(request.url) == f"{CARDS_URL}/devices/{device.device_id}/rotate"
    assert request.headers["Authorization"] == "Bearer t0k3n"
    assert uuid.UUID(request.headers["Idempotency-Key"]).version == 4
    assert json.loads(request.content) == {"reason": "tablet verloren"}
    installed = DeviceFile.load(state / f"{device.device_id}.json")
    answer = cards.answers[request.headers["Idempotency-Key"]]
    assert (installed.key_id, installed.public_key) == (2, answer["public_key"])
    after = _pending(state, device)
    assert [(c.checkin_id, c.nonce, c.counter) for c in after] == [
        (c.checkin_id, c.nonce, c.counter) for c in before
    ]
    assert _signed_by(after, installed.public_key)
    assert not any(_signed_by([c], device.public_key) for c in after)


def test_a_lost_answer_holds_the_journal_back_until_the_same_request_is_answered(
    state: Path, device: DeviceFile, cards: FakeCards, broker: FakeBroker
) -> None:
    cards.lose_answers = True
    code, _, said = _rotate()
    assert code == 1 and "Sleutelwissel onzeker" in said
    assert len(cards.requests) == rotation.ATTEMPTS
    assert DeviceFile.load(state / f"{device.device_id}.json") == device
    assert _signed_by(_pending(state, device), device.public_key)

    # Meanwhile the device scans, but sends nothing signed with a key that may be gone.
    scanned = CliRunner().invoke(device_app, SCAN)
    assert scanned.exit_code == 0, scanned.output
    assert "Verzenden uitgesteld" in scanned.stderr
    assert json.loads(scanned.stdout)["buffered"] == 3
    flushed = CliRunner().invoke(device_app, ["flush", *NO_BROKER])
    assert flushed.exit_code == 1 and json.loads(flushed.stdout) == {"sent": 0, "buffered": 3}
    assert broker.topic == []

    cards.lose_answers = False
    code, emitted, said = _rotate("--reason", "een andere reden")
    assert code == 0, said
    assert "Een eerdere aanvraag zonder antwoord is herhaald." in said
    assert "3 bewaarde check-ins opnieuw ondertekend" in said
    keys = {r.headers["Idempotency-Key"] for r in cards.requests}
    assert len(keys) == 1 and len(cards.answers) == 1  # one rotation, not two
    # The request repeated as it was (its body too, or the key would not match it).
    assert {json.loads(r.content)["reason"] for r in cards.requests} == {"sleutelwissel"}
    assert emitted is not None and emitted["key_id"] == 2
    installed = DeviceFile.load(state / f"{device.device_id}.json")
    assert _signed_by(_pending(state, device), installed.public_key)

    flushed = CliRunner().invoke(device_app, ["flush", *NO_BROKER])
    assert flushed.exit_code == 0 and json.loads(flushed.stdout) == {"sent": 3, "buffered": 0}


def test_a_refusal_keeps_the_old_key_and_forgets_the_request(
    state: Path, device: DeviceFile, cards: FakeCards
) -> None:
    cards.refuse = True
    before = _pending(state, device)
    code, _, said = _rotate()
    assert code == 1
    assert "Sleutelwissel mislukt, de oude sleutel blijft in gebruik: 409" in said
    assert DeviceFile.load(state / f"{device.device_id}.json") == device
    assert _pending(state, device) == before
    journal = _journal(state, device)
    assert journal.rotation() is None  # the next rotation is a new request
    journal.close()


def test_no_rotation_while_the_device_client_runs(
    state: Path, device: DeviceFile, cards: FakeCards
) -> None:
    with device_lock(state / f"{device.device_id}.lock", exclusive=False):
        code, _, said = _rotate()
    assert code == 2 and "Sleutelwissel niet gestart: dit apparaat is in gebruik" in said
    assert cards.requests == []


def test_a_rotation_stopped_before_the_device_file_is_finished_by_the_next_command(
    state: Path,
    device: DeviceFile,
    cards: FakeCards,
    broker: FakeBroker,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def disk_full(self: DeviceFile, path: Path) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(DeviceFile, "write", disk_full)
        failed = CliRunner().invoke(device_app, ["rotate", "--token", "t"])
    assert isinstance(failed.exception, OSError)
    assert DeviceFile.load(state / f"{device.device_id}.json") == device  # the old key
    [answer] = cards.answers.values()
    assert _signed_by(_pending(state, device), str(answer["public_key"]))  # the new key

    # The next scan installs the new key first, then signs with it.
    scanned = CliRunner().invoke(device_app, SCAN)
    assert scanned.exit_code == 0, scanned.output
    assert "Onderbroken sleutelwissel afgewerkt: het apparaat gebruikt nu sleutel 2" in (
        scanned.stderr
    )
    sent = [CheckInRecorded.model_validate_json(r.payload) for r in broker.topic]
    assert len(sent) == 3 and _signed_by(sent, str(answer["public_key"]))
    assert DeviceFile.load(state / f"{device.device_id}.json").key_id == 2

    # And a rotate run again after the stop asks nothing: that rotation is done.
    with monkeypatch.context() as patched:
        patched.setattr(DeviceFile, "write", disk_full)
        CliRunner().invoke(device_app, ["rotate", "--token", "t"])
    code, emitted, said = _rotate()
    assert code == 0 and emitted is not None
    assert emitted["finished_earlier"] is True and emitted["key_id"] == 3
    assert "Geen nieuwe sleutel gevraagd" in said
    assert len(cards.answers) == 2
