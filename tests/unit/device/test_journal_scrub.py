"""A journal made before deleted rows were zeroed may still hold the card numbers of check-ins
it sent back then. The first time it is opened with nothing else holding it, it is rewritten
without them, once; while another process has it open, that waits for a later opening.

As in test_journal_erasure.py, every connection starts on an SQLite that leaves deleted rows
in place (upstream's default), unless the journal asks otherwise."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.outbox import OutgoingRecord
from vtp.device.journal import _SCHEMA, Journal

SENT_CARD = "6299001234568"
WAITING_CARD = "6299000000002"


@pytest.fixture(autouse=True)
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every statement any connection runs, in order; each connection starts with deleted
    rows left in place."""
    ran: list[str] = []
    connect = sqlite3.connect

    def keeping(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db: sqlite3.Connection = connect(*args, **kwargs)
        db.execute("PRAGMA secure_delete=OFF")
        db.set_trace_callback(ran.append)
        return db

    monkeypatch.setattr(sqlite3, "connect", keeping)
    yield ran


def _on_disk(journal: Path) -> bytes:
    wal = journal.with_name(journal.name + "-wal")
    return journal.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def _vacuums(ran: list[str]) -> int:
    return sum(1 for statement in ran if statement.strip().upper() == "VACUUM")


def _old_journal(path: Path) -> None:
    """A journal as the client wrote it before: deleted rows not zeroed, one check-in sent
    (and deleted) and one still waiting."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA secure_delete=OFF")
    db.executescript(_SCHEMA)
    for n, card in enumerate([SENT_CARD, WAITING_CARD], start=1):
        db.execute(
            "INSERT INTO pending (event_id, topic, key, headers, payload) VALUES (?, ?, ?, ?, ?)",
            (f"e{n}", "checkins.recorded", card.encode(), "[]", f'{{"card":"{card}"}}'.encode()),
        )
    db.execute("UPDATE device_state SET counter = 2")
    db.execute("DELETE FROM pending WHERE event_id = 'e1'")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    assert SENT_CARD.encode() in path.read_bytes()


def test_an_old_journal_loses_its_deleted_card_numbers_once_and_keeps_its_records(
    tmp_path: Path, statements: list[str]
) -> None:
    path = tmp_path / "journal.sqlite"
    _old_journal(path)

    journal = Journal(path)
    assert _vacuums(statements) == 1
    assert SENT_CARD.encode() not in _on_disk(path)  # the journal open, as in a kiosk
    assert [(p.seq, p.record.key.decode()) for p in journal.pending()] == [(2, WAITING_CARD)]
    assert journal.counter == 2
    journal.close()
    assert SENT_CARD.encode() not in _on_disk(path)
    assert WAITING_CARD.encode() in _on_disk(path)

    statements.clear()
    again = Journal(path)
    assert _vacuums(statements) == 0
    again.close()


def test_a_journal_made_by_this_client_is_never_rewritten(
    tmp_path: Path, statements: list[str]
) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    Journal(path).close()
    assert _vacuums(statements) == 0


def _record(counter: int) -> OutgoingRecord:
    return OutgoingRecord(f"e{counter}", "checkins.recorded", b"6299000000010", [], b"{}")


def test_an_old_journal_held_by_another_process_is_scrubbed_at_a_later_opening(
    tmp_path: Path, statements: list[str]
) -> None:
    path = tmp_path / "journal.sqlite"
    _old_journal(path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            f"db = sqlite3.connect({str(path)!r}, isolation_level=None)\n"
            "db.execute('SELECT count(*) FROM pending').fetchone()\n"
            "print('open', flush=True)\n"
            "sys.stdin.readline()\n"
            "db.execute('SELECT count(*) FROM pending').fetchone()\n"
            "db.close()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        journal = Journal(path)
        assert _vacuums(statements) == 0  # left alone while the other process has it open
        journal.append(_record)  # and usable as ever, by both
        assert journal.count() == 2
        journal.close()
        assert SENT_CARD.encode() in _on_disk(path)
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        assert holder.wait(timeout=10) == 0

    journal = Journal(path)
    assert _vacuums(statements) == 1
    assert journal.count() == 2
    journal.close()
    assert SENT_CARD.encode() not in _on_disk(path)
