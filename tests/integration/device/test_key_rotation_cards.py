"""`vtp device rotate` against the real cards API (served over HTTP on 127.0.0.1, a fresh
PostgreSQL database): the device ends with the key the cards service now holds, and the
check-ins it had not sent are signed with that key, no longer with the old one."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
import uvicorn
from typer.testing import CliRunner

from services.cards.api import build_app
from shared.checkin_signature import canonical_checkin, verify
from shared.events.checkins import Activity, ActivityCategory, CheckInRecorded
from shared.outbox import OutgoingRecord
from tests.integration.cards.conftest import Desk
from vtp.device.cli import device_app
from vtp.device.client import DeviceClient
from vtp.device.devicefile import DeviceFile
from vtp.device.journal import Journal

pytestmark = pytest.mark.integration
PROVIDER = {"name": "Zwembad Heist", "sub_municipality": "Heist-Centrum", "mode": "refund"}
ACTIVITY = Activity(id="zwembad", category=ActivityCategory.SPORT, name="Zwembad")


class Broker:
    def __init__(self) -> None:
        self.up = True

    async def send_in_order(self, records: Sequence[OutgoingRecord]) -> int:
        return len(records) if self.up else 0

    async def close(self) -> None:
        return None


@pytest.fixture
async def cards_url(desk: Desk) -> AsyncIterator[str]:
    """The cards app of `desk` behind a real HTTP server, as the command meets it."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        build_app(desk.settings, lambda: desk.pool),
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    listening.listen()  # a request made before the server runs waits in the backlog
    serving = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"
    finally:
        server.should_exit = True
        await serving
        listening.close()


async def _vtp_device(*args: str) -> tuple[int, dict[str, object] | None, str]:
    """Exit code, JSON output and staff lines of a command. In a thread: it makes blocking
    requests to the server on this event loop (whose log lines land in the same, swapped,
    sys.stdout: the command's output is its JSON line)."""
    result = await asyncio.to_thread(CliRunner().invoke, device_app, list(args))
    emitted = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return result.exit_code, json.loads(emitted[-1]) if emitted else None, result.stderr


def _verifies(checkin: CheckInRecorded, public_key: str) -> bool:
    return verify(public_key, canonical_checkin(checkin), checkin.signature)


async def test_rotate_installs_the_cards_services_new_key_and_re_signs_what_was_not_sent(
    desk: Desk, cards_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VTP_STATE_DIR", str(tmp_path))
    provider = (await desk.admin.post("/providers", json=PROVIDER)).json()["id"]
    token = await desk.token("provider_admin", provider_id=provider)
    code, out, err = await _vtp_device(
        "register", "--provider", provider, "--cards-url", cards_url, "--token", token
    )
    assert code == 0 and out is not None, err
    device_file = Path(str(out["device_file"]))
    registered = DeviceFile.load(device_file)
    assert registered.key_id == 1

    # Three scans; the broker took the first, the other two wait in the journal.
    broker = Broker()
    journal_path = tmp_path / "devices" / f"{registered.device_id}.sqlite"
    client = DeviceClient(registered.identity(), Journal(journal_path), broker)
    for index in range(3):
        client.scan(card="6299001234568", activity=ACTIVITY, price_cents=450 + index)
        await client.flush()
        broker.up = False
    waiting = [
        CheckInRecorded.model_validate_json(p.record.payload) for p in client.journal.pending()
    ]
    client.journal.close()

    code, out, err = await _vtp_device("rotate", "--reason", "tablet verloren", "--token", token)

    assert code == 0 and out is not None, err
    assert "Nieuwe sleutel 2 geïnstalleerd: 2 bewaarde check-ins opnieuw ondertekend." in err
    assert out["resigned"] == 2
    rotated = DeviceFile.load(device_file)
    async with desk.pool.acquire() as conn:
        held = await conn.fetchrow(
            "SELECT public_key, key_id FROM devices WHERE device_id = $1", registered.device_id
        )
    assert held is not None
    assert (
        (rotated.public_key, rotated.key_id)
        == (held["public_key"], held["key_id"])
        != (
            registered.public_key,
            1,
        )
    )
    announced = await desk.outbox("cards.device-registered.v1")
    assert [(e["key_id"], e["public_key"]) for e in announced] == [
        (1, registered.public_key),
        (2, rotated.public_key),
    ]
    journal = Journal(journal_path)
    resigned = [CheckInRecorded.model_validate_json(p.record.payload) for p in journal.pending()]
    journal.close()
    assert [(c.checkin_id, c.nonce, c.counter) for c in resigned] == [
        (c.checkin_id, c.nonce, c.counter) for c in waiting
    ]
    assert all(_verifies(c, held["public_key"]) for c in resigned)
    assert not any(_verifies(c, registered.public_key) for c in resigned)


async def test_a_rotation_asked_again_with_its_idempotency_key_gives_the_same_key(
    desk: Desk,
) -> None:
    provider = (await desk.admin.post("/providers", json=PROVIDER)).json()["id"]
    device = (await desk.admin.post(f"/providers/{provider}/devices")).json()
    key = {"Idempotency-Key": str(uuid.uuid4())}
    path = f"/devices/{device['device_id']}/rotate"
    first = await desk.admin.post(path, json={"reason": "tablet verloren"}, headers=key)
    again = await desk.admin.post(path, json={"reason": "tablet verloren"}, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
