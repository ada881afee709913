"""What a Belgian bank accepts in a pain.001 file: names and remittance only in the SEPA
character set (EPC: a-z A-Z 0-9 / - ? : ( ) . , ' + space), a creditor name for every
transfer, an account in the SEPA zone, and a requested execution date that is a TARGET
business day. One payee the bank cannot be told about keeps only that payee's payments
pending: the others are paid."""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shared.events.claims import PayeeKind
from shared.sealing import generate_keypair, seal
from tests.support.payments import payment_requested
from vtp.finance import export
from vtp.finance.book import PaymentBook
from vtp.finance.cli import finance_app
from vtp.finance.export import CreditorRegister, export_pending
from vtp.finance.sepa import CreditTransfer, Debtor, build_pain001, execution_day

NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"}
SEPA_TEXT = re.compile(r"^[A-Za-z0-9/\-?:().,'+]([A-Za-z0-9/\-?:().,'+ ]*[A-Za-z0-9/\-?:().,'+])?$")
DEBTOR = Debtor("Gemeente Heist-op-den-Berg & OCMW", "BE68539007547034", "GKCCBEBB")


def _texts(xml: bytes, path: str) -> list[str]:
    return [e.text or "" for e in ET.fromstring(xml).iterfind(path, NS)]


def test_names_and_remittance_keep_to_the_sepa_character_set() -> None:
    names = [
        "Sport & Spel vzw",
        'Jeugdhuis "De Kreun"',
        "Zoë_Çava @home #1; ok!",
        "李明",
        "Ærøskøbing Straße " + "x" * 80,
    ]
    transfers = [
        CreditTransfer(
            uuid.uuid4(), name, "BE71096123456769", 100, f"Ref {name} +++000/0000/00197+++"
        )
        for name in names
    ]
    xml = build_pain001(DEBTOR, transfers, date(2026, 3, 10))
    written = _texts(xml, ".//p:Nm") + _texts(xml, ".//p:Ustrd")
    for text in written:
        assert SEPA_TEXT.match(text), text
    cdtr = _texts(xml, ".//p:Cdtr/p:Nm")
    assert cdtr[:4] == ["Sport + Spel vzw", "Jeugdhuis De Kreun", "Zoe-Cava home 1 ok", "Li Ming"]
    assert all(len(n) <= 70 for n in cdtr)
    assert _texts(xml, ".//p:Dbtr/p:Nm") == ["Gemeente Heist-op-den-Berg + OCMW"]


def test_a_name_the_bank_cannot_read_keeps_only_that_payee_pending(tmp_path: Path) -> None:
    """It made the whole file fail the XSD: nobody was paid, and the error quoted the file."""
    private, public = generate_keypair()
    unreadable = payment_requested()
    unreadable = unreadable.model_copy(
        update={"beneficiary_sealed": seal(public, {"name": "🎉🎈", "iban": "BE62510007547061"})}
    )
    good = payment_requested(payee_kind=PayeeKind.PROVIDER)
    book = PaymentBook(tmp_path / "payments.sqlite")
    with book.transaction():
        book.add_requested([unreadable, good])
    register = CreditorRegister(tmp_path / "creditors.json")
    register.put(good.payee_id, "Sportclub vzw", "BE71096123456769")
    try:
        result = export_pending(book, tmp_path / "exports", DEBTOR, private, register)
        assert result.file is not None
        assert _texts(result.file.read_bytes(), ".//p:EndToEndId") == [good.payment_id.hex]
        assert [p.payment_id for p in result.unreadable_name] == [unreadable.payment_id]
        assert book.get(unreadable.payment_id).status == "pending"  # type: ignore[union-attr]
        # Finance registers a name the bank can read: the next export pays the payee there.
        register.put(unreadable.payee_id, "Jan Peeters", "BE62510007547061")
        again = export_pending(book, tmp_path / "exports", DEBTOR, private, register)
        assert again.file is not None
        assert _texts(again.file.read_bytes(), ".//p:Cdtr/p:Nm") == ["Jan Peeters"]
    finally:
        book.close()


def _creditor(state: Path, name: str, iban: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        finance_app,
        [
            *("creditor", str(uuid.uuid4()), "--name", name),
            *("--iban", iban, "--state-dir", str(state)),
        ],
    )
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("name", "iban", "said"),
    [
        ("Aanbieder vzw", "BR1500000000000010932840814P2", "outside the SEPA zone"),
        ("  ", "BE71096123456769", "no letters or digits"),
        ("🎉", "BE71096123456769", "no letters or digits"),
    ],
)
def test_the_register_refuses_what_no_bank_would_pay(
    tmp_path: Path, name: str, iban: str, said: str
) -> None:
    code, output = _creditor(tmp_path, name, iban)
    assert code == 2, output
    assert said in output and "nothing recorded" in output
    assert iban not in output
    assert not (tmp_path / "finance" / "creditors.json").exists()


@pytest.mark.parametrize(
    ("today", "day"),
    [
        (date(2026, 3, 10), date(2026, 3, 10)),  # a Tuesday
        (date(2026, 3, 7), date(2026, 3, 9)),  # Saturday -> Monday
        (date(2026, 3, 8), date(2026, 3, 9)),  # Sunday -> Monday
        (date(2026, 4, 3), date(2026, 4, 7)),  # Good Friday -> past Easter Monday
        (date(2026, 5, 1), date(2026, 5, 4)),  # Labour Day (a Friday)
        (date(2026, 12, 25), date(2026, 12, 28)),  # Christmas, Boxing Day, Sunday
        (date(2027, 1, 1), date(2027, 1, 4)),  # New Year (a Friday)
    ],
)
def test_the_execution_date_is_a_target_business_day(today: date, day: date) -> None:
    assert execution_day(today) == day


def test_an_export_on_a_saturday_asks_for_monday(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class SaturdayMorning(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            return datetime(2026, 3, 7, 9, 0, tzinfo=UTC).astimezone(tz)

    monkeypatch.setattr(export, "datetime", SaturdayMorning)
    payment = payment_requested(payee_kind=PayeeKind.PROVIDER)
    book = PaymentBook(tmp_path / "payments.sqlite")
    with book.transaction():
        book.add_requested([payment])
    register = CreditorRegister(tmp_path / "creditors.json")
    register.put(payment.payee_id, "Sportclub vzw", "BE71096123456769")
    try:
        result = export_pending(book, tmp_path / "exports", DEBTOR, "unused", register)
    finally:
        book.close()
    assert result.file is not None
    assert _texts(result.file.read_bytes(), ".//p:ReqdExctnDt/p:Dt") == ["2026-03-09"]


def test_our_own_account_needs_a_name_the_bank_can_read(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        finance_app,
        [
            *("debtor", "--name", "★★★", "--iban", "BE68539007547034", "--bic", "GKCCBEBB"),
            *("--state-dir", str(tmp_path)),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "no letters or digits a bank can read" in result.output
    assert not (tmp_path / "finance" / "debtor.json").exists()
