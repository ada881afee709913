"""Monthly financial reports for finance as XLSX (one sheet per view) and CSV (one file
per view), from the claims service's `/reports/monthly` figures. Amounts are written in
euros with two decimals from integer cents (no float arithmetic on money)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vtp.tables import View, write_views

VIEWS: dict[str, View] = {
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


def write_report(report: dict[str, Any], out_dir: Path) -> list[Path]:
    """Writes `report-<month>.xlsx` and `report-<month>-<view>.csv`; returns the paths."""
    return write_views(f"report-{report['month']}", report, VIEWS, out_dir)
