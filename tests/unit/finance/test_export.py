"""`vtp finance export`: a payment request is put in one credit-transfer file only, whether
two exports run at once or one fails half-way, and the file asks for today's Belgian date."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime, tzinfo
from pathlib import Path

import pytest

from shared.events.claims import PayeeKind
from tests.support.payments import payment_requested
from vtp.finance import export
from vtp.finance.book import PaymentBook
from vtp.finance.export import CreditorRegister, ExportResult, export_pending
from vtp.finance.sepa import Debtor

DEBTOR = Debtor("Gemeente Heist-op-den-Berg", "BE68539007547034", "GKCCBEBB")


@pytest.fixture
def pending(tmp_path: Path) -> uuid.UUID:
    """One pending payment to a payee in finance's creditor register; its id."""
    payment = payment_requested(payee_kind=PayeeKind.PROVIDER)
    book = PaymentBook(tmp_path / "payments.sqlite")
    with book.transaction():
        book.add_requested([payment])
    book.close()
    CreditorRegister(tmp_path / "creditors.json").put(
        payment.payee_id, "Sportclub vzw", "BE71096123456769"
    )
    return payment.payment_id


def _export(folder: Path, register: CreditorRegister | None = None) -> ExportResult:
    book = PaymentBook(folder / "payments.sqlite")
    try:
        return export_pending(
            book,
            folder / "exports",
            DEBTOR,
            "no key: the register knows the payee",
            register or CreditorRegister(folder / "creditors.json"),
        )
    finally:
        book.close()


def _paid_in_files(folder: Path) -> list[list[str]]:
    return [
        re.findall(r"<EndToEndId>(.*?)</EndToEndId>", path.read_text())
        for path in sorted((folder / "exports").glob("*.xml"))
    ]


def test_two_exports_at_once_pay_a_request_once(tmp_path: Path, pending: uuid.UUID) -> None:
    building = threading.Event()
    go_on = threading.Event()

    class SlowRegister(CreditorRegister):
        def get(self, payee_id: uuid.UUID) -> dict[str, str] | None:
            building.set()
            go_on.wait(10)
            return super().get(payee_id)

    first = threading.Thread(
        target=_export, args=(tmp_path, SlowRegister(tmp_path / "creditors.json"))
    )
    first.start()
    assert building.wait(10)
    second_result: list[ExportResult] = []
    second = threading.Thread(target=lambda: second_result.append(_export(tmp_path)))
    second.start()
    second.join(0.5)  # the second export has read the book by now, unless it waits
    go_on.set()
    first.join(10)
    second.join(70)
    assert _paid_in_files(tmp_path) == [[pending.hex]]
    assert second_result[0].file is None


def test_an_export_that_fails_half_way_leaves_no_file_to_pay(
    tmp_path: Path, pending: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(PaymentBook, "mark_exported", disk_full)
        with pytest.raises(OSError, match="No space"):
            _export(tmp_path)
    assert list((tmp_path / "exports").iterdir()) == []
    assert _export(tmp_path).payments == 1
    assert _paid_in_files(tmp_path) == [[pending.hex]]


def test_the_execution_date_is_todays_belgian_date(
    tmp_path: Path, pending: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    class HalfPastMidnightInHeist(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            return datetime(2026, 3, 9, 23, 30, tzinfo=UTC).astimezone(tz)

    monkeypatch.setattr(export, "datetime", HalfPastMidnightInHeist)
    result = _export(tmp_path)
    assert result.file is not None
    assert "<ReqdExctnDt><Dt>2026-03-10</Dt></ReqdExctnDt>" in result.file.read_text()


_KILLED = """
import os, sys
from pathlib import Path
from tests.unit.finance.test_export import _export
from vtp.finance import export
from vtp.finance.book import PaymentBook

def killed(*_, **__):
    os._exit(9)  # as kill -9, a power cut or a closed terminal: no exception handler runs

if sys.argv[2] == "before the commit":
    PaymentBook.mark_exported = killed
else:
    export._publish = killed
_export(Path(sys.argv[1]))
"""


@pytest.mark.parametrize("when", ["before the commit", "after the commit"])
def test_an_export_killed_half_way_leaves_one_file_to_pay(
    tmp_path: Path, pending: uuid.UUID, when: str
) -> None:
    """A file written before the book said exported stayed beside the next export's, which
    paid the same requests again (each file its own message id: no bank sees a duplicate)."""
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED, str(tmp_path), when],
        cwd=Path(__file__).parents[3],
        check=False,
    )
    assert killed.returncode == 9
    result = _export(tmp_path)
    assert _paid_in_files(tmp_path) == [[pending.hex]]
    assert not list((tmp_path / "exports").glob("*.partial"))
    if when == "before the commit":
        assert (result.payments, result.finished) == (1, [])
    else:  # the killed export's file, finished: it is the one to send
        assert result.payments == 0
        assert [p.name for p in result.finished] == [
            p.name for p in (tmp_path / "exports").glob("*.xml")
        ]
    assert len(list((tmp_path / "exports").glob("*.status.csv"))) == 1
