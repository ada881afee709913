"""`vtp device scan` and `heartbeat` on a kiosk whose clock is wrong, against a stand-in for
the cards API's `Date` header (httpx MockTransport): the staff read one Dutch line, the
check-in names the cards API's time, and a clock nothing can correct is refused."""

from __future__ import annotations

import base64
import functools
import json
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from typer.testing import CliRunner

from shared.checkin_signature import public_key_b64
from tests.support.device_broker import FakeBroker
from vtp.device import session, simulate
from vtp.device.cli import device_app
from vtp.device.clock import measure_clock_offset
from vtp.device.devicefile import DeviceFile
from vtp.device.journal import Journal

CARDS_URL = "http://cards.test"
SCAN = [
    "scan",
    "--card",
    "6299001234568",
    "--activity",
    "zwembad",
    "--price-cents",
    "450",
    "--bootstrap",
    "127.0.0.1:1",  # never contacted: the transport is a stand-in
]
AHEAD = timedelta(hours=2)


class CardsApi:
    """GET /health/live with a `Date` header `behind` the real clock (so the device looks
    that much ahead), or no answer at all while `down`."""

    def __init__(self, behind: timedelta = timedelta(0)) -> None:
        self.behind = behind
        self.down = False
        self.asked = 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.asked += 1
        assert str(request.url) == f"{CARDS_URL}/health/live"
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        now = datetime.now(UTC) - self.behind
        return httpx.Response(200, headers={"Date": format_datetime(now, usegmt=True)})


def _device_file() -> DeviceFile:
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    seed = base64.b64encode(raw).decode()
    return DeviceFile(uuid.uuid4(), uuid.uuid4(), seed, public_key_b64(key), CARDS_URL, key_id=1)


@pytest.fixture
def device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DeviceFile:
    monkeypatch.setenv("VTP_STATE_DIR", str(tmp_path))
    file = _device_file()
    file.save(tmp_path / "devices")
    broker = FakeBroker(up=False)  # check-ins stay in the journal, to be read back
    monkeypatch.setattr(session, "KafkaTransport", lambda *_, **__: broker)
    return file


@pytest.fixture
def cards(monkeypatch: pytest.MonkeyPatch) -> CardsApi:
    api = CardsApi()
    transport = httpx.MockTransport(api.handle)
    monkeypatch.setattr(
        session,
        "measure_clock_offset",
        functools.partial(measure_clock_offset, transport=transport),
    )
    return api


def _occurred_at(device: DeviceFile) -> list[datetime]:
    journal = Journal(session.devices_dir() / f"{device.device_id}.sqlite")
    try:
        return [
            datetime.fromisoformat(json.loads(p.record.payload)["occurred_at"])
            for p in journal.pending()
        ]
    finally:
        journal.close()


def _notices(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Let op: de klok")]


def test_a_kiosk_two_hours_ahead_signs_the_cards_api_time_and_tells_the_staff(
    device: DeviceFile, cards: CardsApi
) -> None:
    cards.behind = AHEAD
    before = datetime.now(UTC)
    result = CliRunner().invoke(device_app, SCAN)
    after = datetime.now(UTC)
    assert result.exit_code == 0, result.output
    [occurred_at] = _occurred_at(device)
    # Without the correction it would be two hours ahead: rejected for good, in_the_future.
    slack = timedelta(seconds=2)
    assert before - AHEAD - slack <= occurred_at <= after - AHEAD + slack
    [notice] = _notices(result.stderr)
    assert "loopt 2 u voor" in notice
    assert "verbeterd" in notice


def test_a_clock_a_few_seconds_off_changes_nothing_and_says_nothing(
    device: DeviceFile, cards: CardsApi
) -> None:
    cards.behind = timedelta(seconds=5)
    before = datetime.now(UTC)
    result = CliRunner().invoke(device_app, SCAN)
    assert result.exit_code == 0, result.output
    [occurred_at] = _occurred_at(device)
    assert before - timedelta(milliseconds=1) <= occurred_at <= datetime.now(UTC)
    assert _notices(result.stderr) == []


def test_an_explicit_time_is_signed_as_given_and_the_cards_api_not_asked(
    device: DeviceFile, cards: CardsApi
) -> None:
    cards.behind = AHEAD
    result = CliRunner().invoke(device_app, [*SCAN, "--at", "2026-11-27T10:00:00+01:00"])
    assert result.exit_code == 0, result.output
    assert _occurred_at(device) == [datetime(2026, 11, 27, 9, 0, tzinfo=UTC)]
    assert _notices(result.stderr) == []
    assert cards.asked == 0


def test_a_scan_in_a_new_process_uses_the_measurement_its_heartbeat_kept(
    device: DeviceFile, cards: CardsApi
) -> None:
    cards.behind = AHEAD
    beat = CliRunner().invoke(device_app, ["heartbeat", "--bootstrap", "127.0.0.1:1"])
    assert beat.exit_code == 1  # the broker is away; the measurement is kept all the same
    assert cards.asked == 1
    cards.down = True
    before = datetime.now(UTC)
    result = CliRunner().invoke(device_app, SCAN)
    assert result.exit_code == 0, result.output
    assert cards.asked == 2  # asked again (the clock was off), not reached: the kept one
    [occurred_at] = _occurred_at(device)
    slack = timedelta(seconds=2)
    assert before - AHEAD - slack <= occurred_at <= datetime.now(UTC) - AHEAD + slack
    assert len(_notices(result.stderr)) == 1


def test_a_kiosk_that_believes_it_is_1970_is_corrected_by_the_cards_api(
    device: DeviceFile, cards: CardsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    since_1970 = datetime.now(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    monkeypatch.setattr(session, "device_clock", lambda: datetime.now(UTC) - since_1970)
    before = datetime.now(UTC)
    result = CliRunner().invoke(device_app, SCAN)
    assert result.exit_code == 0, result.output
    [occurred_at] = _occurred_at(device)
    assert before - timedelta(seconds=2) <= occurred_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert "achter" in _notices(result.stderr)[0]


def test_a_kiosk_at_1970_that_cannot_reach_the_cards_api_refuses_the_scan(
    device: DeviceFile, cards: CardsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every claims policy would reject it as out_of_window: refused now, nothing journaled,
    so the staff can set the clock and scan the card again."""
    since_1970 = datetime.now(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    monkeypatch.setattr(session, "device_clock", lambda: datetime.now(UTC) - since_1970)
    cards.down = True
    result = CliRunner().invoke(device_app, SCAN)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(
        "Check-in niet geregistreerd: de klok van dit toestel staat op 01-01-1970"
    )
    assert "Traceback" not in result.output
    journal = Journal(session.devices_dir() / f"{device.device_id}.sqlite")
    assert (journal.counter, journal.count()) == (0, 0)
    journal.close()


async def test_a_simulation_tells_the_correction_once_for_all_its_devices_and_scans(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def ten_minutes_ahead(url: str, **_: object) -> int | None:
        return 10 * 60_000

    monkeypatch.setattr(simulate, "measure_clock_offset", ten_minutes_ahead)
    monkeypatch.setattr(simulate, "KafkaTransport", lambda *_, **__: FakeBroker())
    said: list[str] = []
    report = await simulate.simulate(
        "127.0.0.1:1",
        [_device_file(), _device_file()],
        rate=200,
        duration_s=0.1,
        cards=["6299001234568"],
        clock_notice=said.append,
    )
    assert report.scanned == 20
    assert len(said) == 1
    assert "loopt 10 min voor" in said[0]
