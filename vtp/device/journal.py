"""The device's local journal (SQLite): its check-in counter and the records not yet sent.

Every scan is written here first, signed and ready to send, in the same SQLite transaction
that advances the counter; a flusher then sends the oldest records first and deletes them
only after the broker acknowledged them. So a check-in survives a broker outage, a crash or
a power cut, is sent in scan order, and may be sent twice (never zero times): at-least-once
from the device, deduplicated by the consumers on the event id and the check-in id.

Sent records leave no trace in the files: the journal runs with `secure_delete` and empties
its WAL after each acknowledgement, so a card number is kept only while its check-in waits
to be sent (or is set aside as damaged, for an operator). A journal made before it did may
still hold deleted card numbers in its free space: it is rewritten once (`VACUUM`), the
first time it is opened while nothing else has it open (`_scrub_once`).

A key rotation re-signs the pending check-ins in place, in one transaction with the new
key (`rewrite_pending`, `key_rotation`; vtp/device/rotation.py).

It also keeps the device's last clock measurement (`clock`), so that a scan in a new
process can correct the time of its check-in (vtp/device/scantime.py).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from shared.logging import get_logger
from shared.outbox import OutgoingRecord
from vtp.device.scantime import BootAnchor, ClockMeasurement

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
-- A key rotation under way (at most one; vtp/device/rotation.py). First the request's
-- Idempotency-Key, kept before the request is sent so that asking again (after a lost
-- answer, a crash) gets the same new key; then the new key, stored by the transaction
-- that re-signs the pending check-ins with it, kept until the device file holds it too.
CREATE TABLE IF NOT EXISTS key_rotation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    idempotency_key TEXT NOT NULL,
    reason TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    key_id INTEGER,
    public_key TEXT,
    private_key TEXT
);
-- The last measurement of the device clock against the cards API (one row): the device
-- clock when it was made and device minus cards API in ms, both wall-clock values that
-- mean the same to a later process; and, where the platform has them, the boot it was
-- made in and the device clock minus the time since boot, to see the clock set since.
CREATE TABLE IF NOT EXISTS clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    measured_at TEXT NOT NULL,
    offset_ms INTEGER NOT NULL,
    boot_id TEXT,
    wall_minus_boot_ms INTEGER
);
"""

# One row once the file holds no deleted row's bytes: rewritten by `_scrub_once`, or made by
# a journal that zeroed every deletion from the start.
_SCRUBBED = """
CREATE TABLE IF NOT EXISTS scrubbed (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Pending:
    seq: int
    record: OutgoingRecord


@dataclass(frozen=True)
class NewKey:
    """A device key as the cards API hands it out (base64 of the raw 32 bytes each)."""

    key_id: int
    public_key: str
    private_key: str = field(repr=False)


@dataclass(frozen=True)
class Rotation:
    """A key rotation under way: requested, and answered (`new_key`) or not yet."""

    idempotency_key: str
    reason: str
    requested_at: datetime
    new_key: NewKey | None = None


class Journal:
    def __init__(self, path: Path, *, durable: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Owner-only, like the device file: it holds card numbers and what their holders
        # did. SQLite gives its -wal and -shm files the mode of the database file.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        path.chmod(0o600)
        self.path = path
        _scrub_once(path)  # before this process opens it too: it needs the file to itself
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a check-in the device showed as scanned must survive a power cut.
        # Simulated devices (load mode) trade that for speed.
        self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'OFF'}")
        # A sent check-in's card number must leave the file with its row: deleted rows are
        # overwritten with zeros (SQLite's default only where it was built so; the WAL:
        # `acknowledge_through`).
        self._db.execute("PRAGMA secure_delete=ON")
        made_now = not _has_table(self._db, "device_state")
        self._db.executescript(_SCHEMA + _SCRUBBED)
        if made_now:  # zeroed every deletion from the start: nothing to scrub
            self._db.execute(
                "INSERT OR IGNORE INTO scrubbed (id, at) VALUES (1, ?)",
                (datetime.now(UTC).isoformat(),),
            )

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

    def add(self, record: OutgoingRecord) -> None:
        """Store a record that is not a check-in (a cancellation): the counter stays."""
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
        """The broker has everything up to and including `seq`: those records are deleted,
        and the WAL, which still holds the frames that wrote them, is checkpointed into the
        (zeroed) database and truncated. While another process reads the journal the
        checkpoint may not finish; the next acknowledgement tries again."""
        self._db.execute("DELETE FROM pending WHERE seq <= ?", (seq,))
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    def count(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM pending").fetchone()[0])

    def rewrite_pending(
        self,
        rewrite: Callable[[OutgoingRecord], OutgoingRecord | None],
        *,
        new_key: NewKey | None = None,
    ) -> int:
        """Replace pending records in place, in one transaction, and return how many:
        `rewrite` gives a record's replacement, or None to leave it as it is. Each keeps its
        `seq`, so the send order stays the scan order. A row that no longer reads back is
        left alone (`pending` sets it aside). With `new_key`, the key rotation under way is
        answered in the same transaction: the records and the key they are now signed with
        are stored together or not at all."""
        rewritten = 0
        with self._transaction():
            if new_key is not None:
                answered = self._db.execute(
                    "UPDATE key_rotation SET key_id = ?, public_key = ?, private_key = ?"
                    " WHERE id = 1",
                    (new_key.key_id, new_key.public_key, new_key.private_key),
                )
                if answered.rowcount != 1:
                    raise ValueError("no key rotation was requested")
            last = 0
            while rows := self._db.execute(
                "SELECT seq, event_id, topic, key, headers, payload FROM pending"
                " WHERE seq > ? ORDER BY seq LIMIT 500",
                (last,),
            ).fetchall():
                for seq, *columns in rows:
                    last = seq
                    try:
                        record = _record(*columns)
                    except (ValueError, TypeError):
                        continue
                    replacement = rewrite(record)
                    if replacement is None:
                        continue
                    self._db.execute(
                        "UPDATE pending SET event_id = ?, topic = ?, key = ?, headers = ?,"
                        " payload = ? WHERE seq = ?",
                        (
                            replacement.event_id,
                            replacement.topic,
                            replacement.key,
                            _encode_headers(replacement.headers),
                            replacement.payload,
                            seq,
                        ),
                    )
                    rewritten += 1
        return rewritten

    def rotation(self) -> Rotation | None:
        row = self._db.execute(
            "SELECT idempotency_key, reason, requested_at, key_id, public_key, private_key"
            " FROM key_rotation WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        idempotency_key, reason, requested_at, key_id, public_key, private_key = row
        new_key = None if key_id is None else NewKey(key_id, public_key, private_key)
        return Rotation(idempotency_key, reason, datetime.fromisoformat(requested_at), new_key)

    def request_rotation(self, idempotency_key: str, reason: str, at: datetime) -> Rotation:
        """Remember a key rotation about to be asked for. When one is remembered already,
        that one is returned instead: ask again with its key and reason."""
        with self._transaction():
            self._db.execute(
                "INSERT OR IGNORE INTO key_rotation (id, idempotency_key, reason, requested_at)"
                " VALUES (1, ?, ?, ?)",
                (idempotency_key, reason, at.isoformat()),
            )
        found = self.rotation()
        assert found is not None
        return found

    def abandon_rotation(self) -> None:
        """The cards API certainly did not rotate (it refused, or was never reached)."""
        self._db.execute("DELETE FROM key_rotation WHERE key_id IS NULL")

    def end_rotation(self) -> None:
        """The device file holds the new key: the journal's copy is no longer needed."""
        self._db.execute("DELETE FROM key_rotation")

    def clock_measurement(self) -> ClockMeasurement | None:
        """The last clock measurement kept; None when there is none or it does not read
        back (then the device measures again, or scans by its clock as it is)."""
        row = self._db.execute(
            "SELECT measured_at, offset_ms, boot_id, wall_minus_boot_ms FROM clock WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        measured_at, offset_ms, boot_id, wall_minus_boot_ms = row
        try:
            when = datetime.fromisoformat(measured_at)
            if when.utcoffset() is None or not isinstance(offset_ms, int):
                raise ValueError("not a measurement")
            boot = (
                BootAnchor(str(boot_id), int(wall_minus_boot_ms))
                if boot_id is not None and wall_minus_boot_ms is not None
                else None
            )
        except (TypeError, ValueError) as exc:
            log.warning("unreadable clock measurement ignored", error=str(exc)[:200])
            return None
        return ClockMeasurement(when, offset_ms, boot)

    def record_clock(self, measurement: ClockMeasurement) -> None:
        """Keep `measurement` in place of the last one."""
        boot = measurement.boot
        self._db.execute(
            "INSERT OR REPLACE INTO clock (id, measured_at, offset_ms, boot_id,"
            " wall_minus_boot_ms) VALUES (1, ?, ?, ?, ?)",
            (
                measurement.measured_at.isoformat(),
                measurement.offset_ms,
                None if boot is None else boot.boot_id,
                None if boot is None else boot.wall_minus_boot_ms,
            ),
        )


def _scrub_once(path: Path) -> None:
    """Rewrite a journal made before deleted rows were zeroed, once, so that the card numbers
    of check-ins sent back then leave its free pages (and the WAL) too.

    `VACUUM` rebuilds the file from its live rows only (every table has an INTEGER PRIMARY
    KEY, so each `seq` stays what it was), and the checkpoint after it writes the rebuilt
    pages over the old ones and cuts the file and the WAL to size. Both need the file to
    themselves: a reader elsewhere would keep the old pages alive. So the rewrite runs only
    when this connection gets SQLite's exclusive lock on the file at once, which it does not
    while any other connection, in any process, has the journal open (a WAL connection holds
    a shared lock on it as long as it is open); otherwise it is left for the next opening.
    The connection is closed either way: that, not a change of locking mode, is what lets
    go of the lock it took or tried to take."""
    db = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        if not _has_table(db, "device_state"):
            return  # made now, by this opening: its deletions are zeroed from the start
        if _has_table(db, "scrubbed") and db.execute("SELECT 1 FROM scrubbed").fetchone():
            return
        db.execute("PRAGMA secure_delete=ON")
        # The rebuilt copy of the live rows stays in memory, not in a temporary file.
        db.execute("PRAGMA temp_store=MEMORY")
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        try:
            # With exclusive locking, a write transaction takes the file's EXCLUSIVE lock
            # (in WAL mode too) and keeps it until the connection closes.
            db.execute("BEGIN EXCLUSIVE")
            db.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            log.info("journal in use elsewhere, scrub left for later", error=str(exc)[:200])
            return
        db.execute("VACUUM")
        db.executescript(_SCRUBBED)
        db.execute(
            "INSERT OR IGNORE INTO scrubbed (id, at) VALUES (1, ?)",
            (datetime.now(UTC).isoformat(),),
        )
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:  # cannot happen with the lock held; never marked scrubbed without it
            db.execute("DELETE FROM scrubbed")
            return
        log.info("journal scrubbed of deleted rows")
    except sqlite3.DatabaseError as exc:
        # Busy at the first read (another process is scrubbing it), or a damaged file:
        # the journal opens as it is, and the next opening tries again.
        log.warning("journal scrub skipped", error=str(exc)[:200])
    finally:
        db.close()


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    found = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return found is not None


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
