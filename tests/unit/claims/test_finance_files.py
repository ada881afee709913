"""Finance's files: the pain.001.001.09 credit transfer validates against the XSD for any
set of payments, the bank's status file is parsed strictly, and the report is written as
XLSX and CSV with exact euro amounts."""

from __future__ import annotations

import csv
import uuid
import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
import xmlschema
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from vtp.finance.reports import write_report
from vtp.finance.sepa import XSD, CreditTransfer, Debtor, build_pain001, validate_pain001
from vtp.finance.settlement import Outcome, SettleFileError, parse_status_file
from vtp.tables import euros

NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"}
DEBTOR = Debtor("Gemeente Heist-op-den-Berg", "BE68539007547034", "GKCCBEBB")
IBANS = ["BE71096123456769", "BE68539007547034", "NL91ABNA0417164300", "DE89370400440532013000"]

transfers = st.builds(
    CreditTransfer,
    payment_id=st.uuids(),
    creditor_name=st.text(
        st.characters(codec="latin-1", categories=["L", "Zs"]), min_size=1, max_size=90
    ).filter(str.strip),
    creditor_iban=st.sampled_from(IBANS),
    amount_cents=st.integers(1, 99_999_999),
    remittance=st.text(
        st.characters(codec="latin-1", categories=["L", "N", "Zs"]), min_size=1, max_size=200
    ).filter(str.strip),
)


def test_the_schema_is_the_iso_20022_pain_001_001_09() -> None:
    assert XSD.name == "pain.001.001.09.xsd"
    assert "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09" in XSD.read_text()


@settings(max_examples=40, deadline=None)
@given(payments=st.lists(transfers, min_size=1, max_size=8, unique_by=lambda t: t.payment_id))
def test_any_set_of_payments_makes_a_valid_file(payments: list[CreditTransfer]) -> None:
    xml = build_pain001(DEBTOR, payments, date(2026, 3, 10))
    validate_pain001(xml)
    root = ET.fromstring(xml)
    amounts = [Decimal(e.text or "") for e in root.iterfind(".//p:InstdAmt", NS)]
    assert amounts == [Decimal(p.amount_cents) / 100 for p in payments]
    assert Decimal(root.findtext(".//p:GrpHdr/p:CtrlSum", namespaces=NS) or "") == sum(amounts)
    ids = [e.text for e in root.iterfind(".//p:EndToEndId", NS)]
    assert ids == [p.payment_id.hex for p in payments]


def test_a_broken_file_does_not_validate() -> None:
    xml = build_pain001(
        DEBTOR,
        [CreditTransfer(uuid.uuid4(), "Jan", IBANS[0], 100, "+++123/4567/89002+++")],
        date(2026, 1, 2),
    )
    with pytest.raises(xmlschema.XMLSchemaValidationError):
        validate_pain001(xml.replace(b"<Cd>SEPA</Cd>", b"<Cd>SEPA-TOO-LONG-CODE</Cd>"))


def test_status_file_parsing() -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    answers = parse_status_file(
        f"payment_id,status,reason_code,bank_reference\n{a},settled,,B1\n{b},RJCT,,\n"
    )
    assert [(x.payment_id, x.outcome, x.reason_code) for x in answers] == [
        (a, Outcome.SETTLED, ""),
        (b, Outcome.FAILED, "MS03"),
    ]
    for bad in (
        "id,status\nx,settled\n",
        f"payment_id,status\n{a},maybe\n",
        f"payment_id,status\n{a},settled\n{a},failed\n",
        "payment_id,status\nnot-a-uuid,settled\n",
    ):
        with pytest.raises(SettleFileError):
            parse_status_file(bad)


@given(cents=st.integers(-(10**9), 10**9))
def test_euros_are_exact(cents: int) -> None:
    assert Decimal(euros(cents)) == Decimal(cents) / 100


def test_report_files(tmp_path: Path) -> None:
    report = {
        "month": "2026-03",
        "per_payer": [
            {
                "payer": "municipality",
                "detail": "poverty",
                "shares": 3,
                "reversed": 1,
                "net_cents": 4550,
            }
        ],
        "per_provider": [
            {
                "provider": "Sportdienst",
                "sub_municipality": "Heist-Centrum",
                "mode": "refund",
                "claims": 3,
                "reversed": 1,
                "net_cents": 4550,
                "provider_id": "x",
            }
        ],
        "budget_lines": [
            {
                "budget_line": "poverty",
                "budget_year": 2026,
                "budget_cents": 100000,
                "consumed_cents": 4550,
                "remaining_cents": 95450,
                "consumed_basis_points": 455,
            }
        ],
    }
    paths = write_report(report, tmp_path)
    book = load_workbook(paths[0])
    assert book.sheetnames == ["Per betaler", "Per aanbieder", "Budgetverbruik"]
    # Excel keeps numbers as doubles: the cells read back as the exact decimal amounts.
    cells = [c.value for c in book["Budgetverbruik"][2]]
    assert cells[:2] == ["poverty", 2026]
    assert [Decimal(str(v)) for v in cells[2:]] == [
        Decimal(x) for x in ("1000", "45.5", "954.5", "4.55")
    ]
    rows = list(csv.DictReader((tmp_path / "report-2026-03-per_payer.csv").open()))
    assert rows == [
        {
            "payer": "municipality",
            "detail": "poverty",
            "shares": "3",
            "reversed": "1",
            "net_cents": "45.50",
        }
    ]
