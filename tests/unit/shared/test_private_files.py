"""Files with names, postal addresses or IBANs are readable by their owner only from the
moment they exist: with the usual umask and no chmod afterwards, they are still 0600."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from services.notifications.jobs import _write_file
from shared.events.claims import PayeeKind
from shared.events.payments import PaymentRequested
from shared.sealing import generate_keypair, seal
from vtp.finance.book import PaymentBook
from vtp.finance.export import CreditorRegister, export_pending
from vtp.finance.sepa import Debtor


@pytest.fixture(autouse=True)
def usual_umask_and_no_late_chmod(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A later chmod would hide a file that was readable by others for a moment."""
    monkeypatch.setattr(Path, "chmod", lambda *_, **__: None)
    monkeypatch.setattr(os, "chmod", lambda *_, **__: None)
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_letters_pdf_is_created_owner_only(tmp_path: Path) -> None:
    path = _write_file(tmp_path / "letters", "brieven.pdf", b"%PDF-1.4 An Peeters")
    assert path.read_bytes() == b"%PDF-1.4 An Peeters"
    assert _mode(path) == 0o600
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_the_payment_file_and_the_creditor_register_are_created_owner_only(
    tmp_path: Path,
) -> None:
    private_key, public_key = generate_keypair()
    book = PaymentBook(tmp_path / "payments.sqlite")
    holder, provider = uuid.uuid4(), uuid.uuid4()
    request = PaymentRequested(
        payment_id=uuid.uuid4(),
        run_id=uuid.uuid4(),
        payee_kind=PayeeKind.CARD_HOLDER,
        payee_id=holder,
        amount_cents=990,
        structured_reference="+++123/4567/89012+++",
        remittance_info="Vrijetijdspas",
        claims=1,
        requested_at=datetime.now(UTC),
        beneficiary_sealed=seal(public_key, {"name": "An Peeters", "iban": "BE68539007547034"}),
    )
    reimbursement = request.model_copy(
        update={
            "payment_id": uuid.uuid4(),
            "payee_kind": PayeeKind.PROVIDER,
            "payee_id": provider,
            "beneficiary_sealed": None,
        }
    )
    with book.transaction():  # as intake does: the export takes the book's write lock
        book.add_requested([request, reimbursement])
    register = CreditorRegister(tmp_path / "creditors.json")
    register.put(provider, "Sportdienst Heist", "BE71096123456769")
    assert _mode(register.path) == 0o600
    result = export_pending(
        book,
        tmp_path / "out",
        Debtor("Gemeente Heist-op-den-Berg", "BE62510007547061", "GEBABEBB"),
        private_key,
        register,
        date(2026, 11, 27),
    )
    book.close()
    assert result.file is not None and result.payments == 2
    assert b"An Peeters" in result.file.read_bytes()
    assert _mode(result.file) == 0o600
