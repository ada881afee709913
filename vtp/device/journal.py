"""The device's local journal (SQLite): its check-in counter and the records not yet sent.

Every scan is written here first, signed and ready to send, in the same SQLite transaction
that advances the counter; a flusher then sends the oldest records first and deletes them
only after the broker acknowledged them. So a check-in survives a broker outage, a crash or
a power cut, is sent in scan order, and may be sent twice (never zero times): at-least-once
from the device, deduplicated by the consumers on the event id and the check-in id.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from shared.logging import get_logger
from shared.outbox import OutgoingRecord

log = get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS device_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    counter INTEGER NOT NULL
);
INSERT OR IGNORE INTO device_state (id, counter) VALUES (1, 0);
-- AUTOINCREMENT: a sequence number is never reused, even after the table emptied,
-- so `seq` order is scan order for the lifetime of the file.
CREATE TABLE IF NOT EXISTS pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    key BLOB NOT NULL,
    headers TEXT NOT NULL,
    payload BLOB NOT NULL
);
-- Records that could no longer be read back (a damaged file, a hand edit): set aside, so
-- that one of them does not hold back every later check-in, and kept for an operator.
CREATE TABLE IF NOT EXISTS damaged (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    key BLOB NOT NULL,
    headers TEXT NOT NULL,
    payload BLOB NOT NULL,
    error TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Pending:
    seq: int
    record: OutgoingRecord


class Journal:
    def __init__(self, path: Path, *, durable: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Owner-only, like the device file: it holds card numbers and what their holders
        # did. SQLite gives its -wal and -shm files the mode of the database file.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        path.chmod(0o600)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a check-in the device showed as scanned must survive a power cut.
        # Simulated devices (load mode) trade that for speed.
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @property
    def counter(self) -> int:
        row = self._db.execute("SELECT counter FROM device_state WHERE id = 1").fetchone()
        return int(row[0])

    def append(self, build: Callable[[int], OutgoingRecord]) -> OutgoingRecord:
        """Advance the counter and store what `build` makes of it, atomically."""
        with self._transaction():
            counter = self.counter + 1
            record = build(counter)
            self._db.execute("UPDATE device_state SET counter = ? WHERE id = 1", (counter,))
            self._db.execute(
                "INSERT INTO pending (event_id, topic, key, headers, payload) VALUES (?, ?, ?, ?, ?)",
                (
                    record.event_id,
                    record.topic,
                    record.key,
                    _encode_headers(record.headers),
                    record.payload,
                ),
            )
        return record

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def pending(self, limit: int = 500) -> list[Pending]:
        """The oldest records, up to `limit`. One that cannot be read back is set aside
        (table `damaged`): left in place it would stop every later one, for ever."""
        while True:
            rows = self._db.execute(
                "SELECT seq, event_id, topic, key, headers, payload FROM pending"
                " ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
            found: list[Pending] = []
            damaged: dict[int, str] = {}
            for seq, *columns in rows:
                try:
                    found.append(Pending(seq, _record(*columns)))
                except (ValueError, TypeError) as exc:
                    damaged[seq] = f"{type(exc).__name__}: {exc}"[:200]
            if not damaged:
                return found
            self._set_aside(damaged)

    def _set_aside(self, damaged: dict[int, str]) -> None:
        with self._transaction():
            for seq, error in damaged.items():
                self._db.execute(
                    "INSERT INTO damaged SELECT *, ? FROM pending WHERE seq = ?", (error, seq)
                )
                self._db.execute("DELETE FROM pending WHERE seq = ?", (seq,))
        for seq, error in damaged.items():
            log.error("damaged journal record set aside", seq=seq, error=error)

    def acknowledge_through(self, seq: int) -> None:
        """The broker has everything up to and including `seq`."""
        self._db.execute("DELETE FROM pending WHERE seq <= ?", (seq,))

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM pending").fetchone()[0])


def _encode_headers(headers: list[tuple[str, bytes]]) -> str:
    return json.dumps([[k, base64.b64encode(v).decode()] for k, v in headers])


def _record(
    event_id: str, topic: str, key: object, headers: str, payload: object
) -> OutgoingRecord:
    """A stored row as a record again; ValueError or TypeError when it no longer is one."""
    return OutgoingRecord(event_id, topic, _blob(key), _decode_headers(headers), _blob(payload))


def _decode_headers(text: str) -> list[tuple[str, bytes]]:
    headers = [(k, base64.b64decode(v, validate=True)) for k, v in json.loads(text)]
    if not all(isinstance(k, str) for k, _ in headers):
        raise TypeError("a header name is not text")
    return headers


def _blob(value: object) -> bytes:
    if not isinstance(value, bytes):  # bytes(5) would be five zero bytes, not an error
        raise TypeError(f"expected a blob, found {type(value).__name__}")
    return value
