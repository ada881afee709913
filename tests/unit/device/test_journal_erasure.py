"""A sent check-in's card number leaves the journal's files: not in the database file's free
space, not in the WAL that wrote it. Only check-ins still waiting to be sent keep theirs.

Debian's SQLite is built to zero deleted rows; upstream's is not, nor are many others. So
this test runs the journal on an SQLite that does not, unless the journal asks it to."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.events.checkins import Activity, ActivityCategory
from tests.support.device_broker import FakeBroker
from vtp.device.client import DeviceClient
from vtp.device.journal import Journal
from vtp.device.signer import DeviceIdentity

SENT_CARD = "6299001234568"
WAITING_CARD = "6299000000002"
ACTIVITY = Activity(id="zwembad", category=ActivityCategory.SPORT, name="Zwembad")


@pytest.fixture(autouse=True)
def sqlite_that_keeps_deleted_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connection starts with upstream SQLite's default: deleted rows left in place."""
    connect = sqlite3.connect

    def keeping(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db: sqlite3.Connection = connect(*args, **kwargs)
        db.execute("PRAGMA secure_delete=OFF")
        return db

    monkeypatch.setattr(sqlite3, "connect", keeping)


def _on_disk(journal: Path) -> bytes:
    """Every byte SQLite keeps for the journal: the database file and its WAL."""
    wal = journal.with_name(journal.name + "-wal")
    return journal.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


async def test_a_sent_checkin_leaves_no_card_number_in_the_journal_files(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite"
    broker = FakeBroker(up=False)
    identity = DeviceIdentity(uuid.uuid4(), uuid.uuid4(), Ed25519PrivateKey.generate())
    client = DeviceClient(identity, Journal(path), broker)
    client.scan(card=SENT_CARD, activity=ACTIVITY, price_cents=350)
    assert SENT_CARD.encode() in _on_disk(path)  # journaled as it was scanned

    broker.up = True
    assert (await client.flush()).sent == 1
    assert SENT_CARD.encode() not in _on_disk(path)  # the journal still open, as in a kiosk

    broker.up = False
    client.scan(card=WAITING_CARD, activity=ACTIVITY, price_cents=350)
    client.journal.close()
    assert SENT_CARD.encode() not in _on_disk(path)
    assert WAITING_CARD.encode() in _on_disk(path)
    reopened = Journal(path)
    assert [p.record.key.decode() for p in reopened.pending()] == [WAITING_CARD]
    reopened.close()
