"""Monthly financial reports for finance as XLSX (one sheet per view) and CSV (one file
per view), from the claims service's `/reports/monthly` figures. Amounts are written in
euros with two decimals from integer cents (no float arithmetic on money)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from openpyxl import Workbook

VIEWS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "per_payer": (
        "Per betaler",
        [
            ("payer", "betaler"),
            ("detail", "budgetlijn / id"),
            ("shares", "aandelen"),
            ("reversed", "teruggedraaid"),
            ("net_cents", "netto (EUR)"),
        ],
    ),
    "per_provider": (
        "Per aanbieder",
        [
            ("provider", "aanbieder"),
            ("sub_municipality", "deelgemeente"),
            ("mode", "modus"),
            ("claims", "claims"),
            ("reversed", "teruggedraaid"),
            ("net_cents", "netto (EUR)"),
            ("provider_id", "id"),
        ],
    ),
    "budget_lines": (
        "Budgetverbruik",
        [
            ("budget_line", "budgetlijn"),
            ("budget_year", "budgetjaar"),
            ("budget_cents", "budget (EUR)"),
            ("consumed_cents", "verbruikt (EUR)"),
            ("remaining_cents", "resterend (EUR)"),
            ("consumed_basis_points", "verbruikt (%)"),
        ],
    ),
}


def euros(cents: int | None) -> str:
    return "" if cents is None else _hundredths(cents)


def percent(basis_points: int | None) -> str:
    """Basis points (hundredths of a percent) as a percentage with two decimals."""
    return "" if basis_points is None else _hundredths(basis_points)


def _hundredths(value: int) -> str:
    # The sign apart, then the magnitude: `//` and `%` on a negative number floor it
    # (-150 // 100 = -2, -150 % 100 = 50: "-2.50" for -1.50).
    sign = "-" if value < 0 else ""
    whole, rest = divmod(abs(value), 100)
    return f"{sign}{whole}.{rest:02d}"


def _cell(key: str, value: Any) -> Any:
    if key.endswith("_cents"):
        return euros(value)
    if key == "consumed_basis_points":
        return percent(value)
    return value


def write_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Writes `report-<month>.xlsx` and `report-<month>-<view>.csv`; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    month = report["month"]
    written = []
    book = Workbook()
    book.remove(book.active)
    for view, (title, columns) in VIEWS.items():
        rows = [[_cell(k, row.get(k)) for k, _ in columns] for row in report[view]]
        sheet = book.create_sheet(title)
        sheet.append([label for _, label in columns])
        for row in rows:
            # Euro amounts go in as numbers (Decimal-free: the text is exact, Excel parses it).
            sheet.append([_number(v) for v in row])
        path = out_dir / f"report-{month}-{view}.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([key for key, _ in columns])
            writer.writerows(rows)
        written.append(path)
    xlsx = out_dir / f"report-{month}.xlsx"
    book.save(xlsx)
    return [xlsx, *written]


def _number(value: Any) -> Any:
    if isinstance(value, str) and value and value.lstrip("-").replace(".", "", 1).isdigit():
        from decimal import Decimal

        return Decimal(value)
    return value
