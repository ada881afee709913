"""Reports as files people open: one XLSX with a sheet per view, and one CSV per view.
Amounts come as integer cents and are written in euros with two decimals, percentages from
basis points, without float arithmetic."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl import Workbook

# A view: its sheet title and its columns as (key in the report's rows, heading).
View = tuple[str, Sequence[tuple[str, str]]]


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


def cell(key: str, value: Any) -> Any:
    """A value as a file shows it: cents as euros, basis points as a percentage."""
    if key.endswith("_cents"):
        return euros(value)
    if key.endswith("_basis_points"):
        return percent(value)
    return value


def write_views(
    stem: str, report: Mapping[str, Any], views: Mapping[str, View], out_dir: Path
) -> list[Path]:
    """Writes `<stem>.xlsx` (a sheet per view) and `<stem>-<view>.csv`; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    book = Workbook()
    book.remove(book.active)
    for view, (title, columns) in views.items():
        rows = [[cell(k, row.get(k)) for k, _ in columns] for row in report[view]]
        sheet = book.create_sheet(title)
        sheet.append([label for _, label in columns])
        for row in rows:
            # Euro amounts go in as numbers, parsed from their exact text (never a float).
            sheet.append([_number(v) for v in row])
            for written_cell in sheet[sheet.max_row]:
                if written_cell.data_type == "f":  # a name typed in elsewhere, never a formula
                    written_cell.data_type = "s"
        path = out_dir / f"{stem}-{view}.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([key for key, _ in columns])
            writer.writerows(rows)
        written.append(path)
    xlsx = out_dir / f"{stem}.xlsx"
    book.save(xlsx)
    return [xlsx, *written]


def _number(value: Any) -> Any:
    if isinstance(value, str) and value and value.lstrip("-").replace(".", "", 1).isdigit():
        return Decimal(value)
    return value
