"""The device keeps scanning when the broker is away, and sends everything, in order, later."""

from __future__ import annotations

import asyncio
import base64
import errno
import json
import os
import stat
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from shared import topics
from shared.checkin_signature import canonical_heartbeat, public_key_b64, verify
from shared.envelope import parse_headers
from shared.events.checkins import Activity, ActivityCategory, DeviceHeartbeat
from shared.outbox import OutgoingRecord
from vtp.device.client import DeviceClient
from vtp.device.devicefile import DeviceFile, DeviceFileError, find_device_file
from vtp.device.journal import Journal
from vtp.device.signer import DeviceIdentity

CARDS = ["6299001234568", "6299000000002"]
ACTIVITY = Activity(id="zwembad", category=ActivityCategory.SPORT, name="Zwembad")


class FlakyBroker:
    """Takes records while `up`; when down, takes only the first `accept_when_down`.
    `offered` keeps every record it was offered, taken or not."""

    def __init__(self) -> None:
        self.up = True
        self.accept_when_down = 0
        self.topic: list[OutgoingRecord] = []
        self.offered: list[OutgoingRecord] = []

    async def send_in_order(self, records: Sequence[OutgoingRecord]) -> int:
        self.offered.extend(records)
        taken = len(records) if self.up else min(self.accept_when_down, len(records))
        self.topic.extend(records[:taken])
        return taken

    async def close(self) -> None:
        return None


def _identity() -> DeviceIdentity:
    return DeviceIdentity(uuid.uuid4(), uuid.uuid4(), Ed25519PrivateKey.generate())


def _counters(records: list[OutgoingRecord]) -> list[int]:
    return [json.loads(r.payload)["counter"] for r in records]


async def test_scans_while_offline_are_buffered_and_flushed_in_scan_order(tmp_path: Path) -> None:
    broker = FlakyBroker()
    client = DeviceClient(_identity(), Journal(tmp_path / "j.sqlite"), broker)
    broker.up = False
    for i in range(7):
        client.scan(card=CARDS[i % 2], activity=ACTIVITY, price_cents=100 + i)
    assert (await client.flush()).remaining == 7
    broker.up = True
    result = await client.flush()
    assert (result.sent, result.remaining) == (7, 0)
    assert _counters(broker.topic) == [1, 2, 3, 4, 5, 6, 7]
    assert {r.topic for r in broker.topic} == {topics.CHECKIN_RECORDED.name}
    assert [r.key.decode() for r in broker.topic] == [CARDS[i % 2] for i in range(7)]


async def test_a_partial_send_keeps_the_rest_and_resends_from_the_first_missing(
    tmp_path: Path,
) -> None:
    broker = FlakyBroker()
    client = DeviceClient(_identity(), Journal(tmp_path / "j.sqlite"), broker)
    for _ in range(5):
        client.scan(card=CARDS[0], activity=ACTIVITY, price_cents=500)
    broker.up, broker.accept_when_down = False, 2
    assert (await client.flush()).remaining == 3
    broker.up = True
    await client.flush()
    assert _counters(broker.topic) == [1, 2, 3, 4, 5]


async def test_a_resent_record_is_byte_for_byte_the_first_one(tmp_path: Path) -> None:
    """Refused once, sent again after a restart: the same event id, signature and bytes, so
    claims recognises the repeat."""
    identity, broker = _identity(), FlakyBroker()
    client = DeviceClient(identity, Journal(tmp_path / "j.sqlite"), broker)
    client.scan(card=CARDS[0], activity=ACTIVITY, price_cents=500)
    broker.up = False
    assert (await client.flush()).remaining == 1
    client.journal.close()
    broker.up = True
    restarted = DeviceClient(identity, Journal(tmp_path / "j.sqlite"), broker)
    assert (await restarted.flush()).sent == 1
    first, again = broker.offered
    assert again == first
    assert broker.topic == [first]
    assert parse_headers(again.headers).id == uuid.UUID(first.event_id)


async def test_the_counter_survives_a_restart_and_never_repeats(tmp_path: Path) -> None:
    identity = _identity()
    client = DeviceClient(identity, Journal(tmp_path / "j.sqlite"), FlakyBroker())
    for _ in range(3):
        client.scan(card=CARDS[0], activity=ACTIVITY, price_cents=1)
    client.journal.close()
    restarted = DeviceClient(identity, Journal(tmp_path / "j.sqlite"), FlakyBroker())
    assert restarted.scan(card=CARDS[0], activity=ACTIVITY, price_cents=1).counter == 4


async def test_a_failed_scan_neither_stores_nor_uses_a_counter(tmp_path: Path) -> None:
    client = DeviceClient(_identity(), Journal(tmp_path / "j.sqlite"), FlakyBroker())
    with pytest.raises(ValueError, match="kaartnummer"):
        client.scan(card="1234", activity=ACTIVITY, price_cents=1)
    with pytest.raises(ValueError):
        client.scan(card=CARDS[0], activity=ACTIVITY, price_cents=-1)
    assert (client.journal.counter, client.journal.count()) == (0, 0)


async def test_the_background_flusher_delivers_what_was_scanned_offline(tmp_path: Path) -> None:
    broker = FlakyBroker()
    broker.up = False
    client = DeviceClient(
        _identity(), Journal(tmp_path / "j.sqlite"), broker, flush_interval_s=0.01
    )
    await client.start()
    for _ in range(4):
        client.scan(card=CARDS[1], activity=ACTIVITY, price_cents=1)
    broker.up = True
    result = await client.stop()
    assert result.remaining == 0
    assert _counters(broker.topic) == [1, 2, 3, 4]


async def test_heartbeat_carries_counter_buffered_and_offset_and_is_signed(
    tmp_path: Path,
) -> None:
    key = Ed25519PrivateKey.generate()
    identity = DeviceIdentity(uuid.uuid4(), uuid.uuid4(), key)
    broker = FlakyBroker()

    async def offset() -> int | None:
        return -1500

    client = DeviceClient(identity, Journal(tmp_path / "j.sqlite"), broker, clock_offset=offset)
    broker.up = False
    client.scan(card=CARDS[0], activity=ACTIVITY, price_cents=1)
    client.scan(card=CARDS[0], activity=ACTIVITY, price_cents=1)
    await client.flush()
    broker.up = True
    assert await client.send_heartbeat()
    sent = broker.topic[-1]
    assert sent.topic == topics.DEVICE_HEARTBEAT.name
    beat = DeviceHeartbeat.model_validate_json(sent.payload)
    assert (beat.counter, beat.buffered, beat.clock_offset_ms) == (2, 2, -1500)
    assert canonical_heartbeat(beat).endswith(b"\n2\n2\n-1500")
    assert verify(public_key_b64(key), canonical_heartbeat(beat), beat.signature)


def _device_file() -> DeviceFile:
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return DeviceFile(
        uuid.uuid4(), uuid.uuid4(), base64.b64encode(raw).decode(), public_key_b64(key)
    )


def test_the_device_file_is_private_and_refused_when_it_is_not(tmp_path: Path) -> None:
    file = _device_file()
    path = file.save(tmp_path / "devices")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert DeviceFile.load(find_device_file(tmp_path / "devices", None)) == file
    assert DeviceFile.load(path).identity().device_id == file.device_id
    path.chmod(0o644)
    with pytest.raises(DeviceFileError, match="0600"):
        DeviceFile.load(path)


async def test_a_damaged_journal_record_is_set_aside_and_does_not_stop_the_others(
    tmp_path: Path,
) -> None:
    broker = FlakyBroker()
    client = DeviceClient(_identity(), Journal(tmp_path / "j.sqlite"), broker)
    for _ in range(3):
        client.scan(card=CARDS[0], activity=ACTIVITY, price_cents=500)
    # What a damaged page or a hand edit leaves: a row that no longer reads back.
    client.journal._db.execute('UPDATE pending SET headers = \'[["ce_id", "%%%"\' WHERE seq = 2')
    result = await client.flush()
    assert (result.sent, result.remaining) == (2, 0)
    assert _counters(broker.topic) == [1, 3]
    kept = client.journal._db.execute("SELECT seq, error FROM damaged").fetchall()
    assert [seq for seq, _ in kept] == [2]


def test_the_journal_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """It holds card numbers and where their holders went: 0600, like the device file,
    and so are SQLite's -wal and -shm files next to it."""
    older = tmp_path / "older.sqlite"
    older.touch(mode=0o644)
    Journal(older).close()
    assert stat.S_IMODE(older.stat().st_mode) == 0o600
    journal = Journal(tmp_path / "j.sqlite")
    DeviceClient(_identity(), journal, FlakyBroker()).scan(
        card=CARDS[0], activity=ACTIVITY, price_cents=1
    )
    files = sorted(tmp_path.glob("j.sqlite*"))
    assert [f.name for f in files] == ["j.sqlite", "j.sqlite-shm", "j.sqlite-wal"]
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    journal.close()


async def test_a_scan_time_without_a_utc_offset_is_refused_not_read_as_local_time(
    tmp_path: Path,
) -> None:
    client = DeviceClient(_identity(), Journal(tmp_path / "j.sqlite"), FlakyBroker())
    with pytest.raises(ValueError, match="no UTC offset"):
        client.scan(
            card=CARDS[0], activity=ACTIVITY, price_cents=1, occurred_at=datetime(2026, 5, 1, 14)
        )
    assert client.journal.count() == 0


async def test_a_failing_heartbeat_waits_for_its_turn_instead_of_every_flush_round(
    tmp_path: Path,
) -> None:
    measured = 0

    async def offset() -> int | None:
        nonlocal measured  # each measurement is a request to the cards API
        measured += 1
        return 0

    class NoHeartbeats(FlakyBroker):
        async def send_in_order(self, records: Sequence[OutgoingRecord]) -> int:
            if records[0].topic == topics.DEVICE_HEARTBEAT.name:
                raise RuntimeError("heartbeat refused")
            return await super().send_in_order(records)

    client = DeviceClient(
        _identity(),
        Journal(tmp_path / "j.sqlite"),
        NoHeartbeats(),
        flush_interval_s=0.01,
        heartbeat_interval_s=3600,
        clock_offset=offset,
    )
    await client.start()
    await asyncio.sleep(0.3)
    await client.stop()
    assert measured == 1


def test_saving_a_device_file_again_keeps_the_old_one_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key is handed out once: a full disk or a power cut mid-write must not leave an
    empty or half file. Written aside, synced, renamed; the directory synced too."""
    first = _device_file()  # and the same device with another key:
    second = replace(_device_file(), device_id=first.device_id, provider_id=first.provider_id)
    path = first.save(tmp_path)
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)

    def disk_full(body: object, handle: Any, **_: object) -> None:
        handle.write('{"device_id": ')
        raise OSError(errno.ENOSPC, "No space left on device")

    real_dump = json.dump
    monkeypatch.setattr(json, "dump", disk_full)
    with pytest.raises(OSError, match="No space"):
        second.save(tmp_path)
    assert DeviceFile.load(path) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    monkeypatch.setattr(json, "dump", real_dump)
    second.save(tmp_path)
    assert DeviceFile.load(path) == second
    assert len(synced) == 2  # the file, then the directory holding its new name
