"""Finance's own payment book: what it was asked to pay and what became of it. A small
SQLite file, so finance never reads the claims database."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shared.events.payments import PaymentRequested
from vtp.finance.refusals import PaidAnswer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS payments (
    payment_id         TEXT PRIMARY KEY,
    run_id             TEXT NOT NULL,
    payee_kind         TEXT NOT NULL,
    payee_id           TEXT NOT NULL,
    amount_cents       INTEGER NOT NULL CHECK (amount_cents > 0),
    reference          TEXT NOT NULL,
    remittance         TEXT NOT NULL,
    beneficiary_sealed TEXT,
    requested_at       TEXT NOT NULL,
    -- pending -> exported -> settled (-> returned) | failed
    status             TEXT NOT NULL DEFAULT 'pending',
    export_file        TEXT,
    answered_at        TEXT
);
CREATE INDEX IF NOT EXISTS payments_payee ON payments (payee_id);
"""
# Columns added after the first books were written: (name, declaration).
_ADDED_COLUMNS = (
    # The bank's reason for a failure or a return (ISO 20022, e.g. AC04).
    ("reason_code", "TEXT"),
    # The account it was paid to, as a keyed fingerprint (vtp/finance/refusals.py): no
    # IBAN in the book. NULL for payments exported before.
    ("paid_to", "TEXT"),
)


@dataclass(frozen=True)
class BookedPayment:
    payment_id: uuid.UUID
    payee_kind: str
    payee_id: uuid.UUID
    amount_cents: int
    reference: str
    remittance: str
    beneficiary_sealed: str | None
    status: str


class PaymentBook:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Waits for another `vtp finance` command's export rather than failing at once.
        self._db = sqlite3.connect(path, timeout=60)
        self._db.row_factory = sqlite3.Row
        self._db.executescript(_SCHEMA)
        have = {r["name"] for r in self._db.execute("PRAGMA table_info(payments)")}
        with self._db:
            for name, declaration in _ADDED_COLUMNS:
                if name not in have:
                    self._db.execute(f"ALTER TABLE payments ADD COLUMN {name} {declaration}")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._db:
            yield

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """A transaction that holds the book's write lock from its first read, so what it
        read is still so when it commits: another export waits for it."""
        self._db.execute("BEGIN IMMEDIATE")
        with self._db:
            yield

    def add_requested(self, events: Sequence[PaymentRequested]) -> int:
        """Record requests; a request seen before (redelivery) changes nothing."""
        before = self._db.total_changes
        self._db.executemany(
            "INSERT OR IGNORE INTO payments (payment_id, run_id, payee_kind, payee_id,"
            " amount_cents, reference, remittance, beneficiary_sealed, requested_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    str(e.payment_id),
                    str(e.run_id),
                    e.payee_kind.value,
                    str(e.payee_id),
                    e.amount_cents,
                    e.structured_reference,
                    e.remittance_info,
                    e.beneficiary_sealed,
                    e.requested_at.isoformat(),
                )
                for e in events
            ],
        )
        return self._db.total_changes - before

    def with_status(self, *statuses: str) -> list[BookedPayment]:
        marks = ",".join("?" for _ in statuses)
        rows = self._db.execute(
            f"SELECT * FROM payments WHERE status IN ({marks}) ORDER BY requested_at, payment_id",  # noqa: S608 - placeholders only
            statuses,
        ).fetchall()
        return [_booked(r) for r in rows]

    def get(self, payment_id: uuid.UUID) -> BookedPayment | None:
        row = self._db.execute(
            "SELECT * FROM payments WHERE payment_id = ?", (str(payment_id),)
        ).fetchone()
        return _booked(row) if row is not None else None

    def mark_exported(
        self,
        payment_ids: Sequence[uuid.UUID],
        export_file: str,
        paid_to: Mapping[uuid.UUID, str] | None = None,
    ) -> None:
        accounts = paid_to or {}
        self._db.executemany(
            "UPDATE payments SET status = 'exported', export_file = ?, paid_to = ?"
            " WHERE payment_id = ?",
            [(export_file, accounts.get(p), str(p)) for p in payment_ids],
        )

    def export_files(self) -> set[str]:
        """The names of the credit-transfer files the book has payments exported in."""
        rows = self._db.execute(
            "SELECT DISTINCT export_file FROM payments WHERE export_file IS NOT NULL"
        )
        return {r[0] for r in rows}

    def mark_answered(
        self, payment_id: uuid.UUID, status: str, at: str, reason_code: str | None = None
    ) -> None:
        # A repeated answer keeps its first time: the order of answers decides which
        # account the bank refused last (vtp/finance/refusals.py).
        self._db.execute(
            "UPDATE payments SET answered_at = CASE WHEN status = :status THEN answered_at"
            " ELSE :at END, status = :status, reason_code = :reason_code WHERE payment_id = :id",
            {"status": status, "at": at, "reason_code": reason_code, "id": str(payment_id)},
        )

    def answers_to(self, payee_id: uuid.UUID) -> list[PaidAnswer]:
        """The bank's answers about the payee's payments, oldest first, with the account
        each went to (those exported before accounts were noted are left out)."""
        rows = self._db.execute(
            "SELECT paid_to, status, reason_code FROM payments WHERE payee_id = ?"
            " AND paid_to IS NOT NULL AND answered_at IS NOT NULL"
            " ORDER BY answered_at, payment_id",
            (str(payee_id),),
        ).fetchall()
        return [PaidAnswer(r["paid_to"], r["status"], r["reason_code"]) for r in rows]

    def counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, count(*) FROM payments GROUP BY status")
        return {r[0]: int(r[1]) for r in rows}


def _booked(row: sqlite3.Row) -> BookedPayment:
    return BookedPayment(
        payment_id=uuid.UUID(row["payment_id"]),
        payee_kind=row["payee_kind"],
        payee_id=uuid.UUID(row["payee_id"]),
        amount_cents=int(row["amount_cents"]),
        reference=row["reference"],
        remittance=row["remittance"],
        beneficiary_sealed=row["beneficiary_sealed"],
        status=row["status"],
    )
