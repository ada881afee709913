"""The usage report as the network and the council read it: in Dutch, tables with a bar per
row where a comparison is the point (take-up per group and area, check-ins per month and per
provider), and "<5" where a cell would count fewer than five card holders."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from shared.localtime import DUTCH_MONTHS
from shared.money import format_eur
from vtp.tables import View

GROUPS = {
    "poverty": "kansentarief",
    "disability": "personen met een beperking",
    "senior": "senioren",
}
CATEGORIES = {
    "culture": "cultuur",
    "sport": "sport",
    "youth": "jeugd",
    "course": "cursus",
    "membership": "lidmaatschap",
}
BAR_WIDTH = 24
TOP_PROVIDERS = 15

# The files: one sheet (and CSV) per view, headings in Dutch, keys as in the report.
_GROUP_COLUMNS = [
    ("eligible_holders", "gerechtigd"),
    ("active_holders", "actief"),
    ("take_up_basis_points", "bereik (%)"),
    ("checkins", "check-ins"),
    ("discount_cents", "korting (EUR)"),
]
_USE_COLUMNS = [
    ("checkins", "check-ins"),
    ("active_holders", "actieve kaarthouders"),
    ("discount_cents", "korting (EUR)"),
]
FILE_VIEWS: Mapping[str, View] = {
    "per_target_group": ("Per doelgroep", [("target_group", "doelgroep"), *_GROUP_COLUMNS]),
    "per_sub_municipality": (
        "Per deelgemeente",
        [("sub_municipality", "deelgemeente"), *_GROUP_COLUMNS],
    ),
    "per_month": ("Per maand", [("month", "maand"), *_USE_COLUMNS]),
    "per_category": ("Per categorie", [("category", "categorie"), *_USE_COLUMNS]),
    "per_provider": (
        "Per aanbieder",
        [
            ("provider", "aanbieder"),
            ("sub_municipality", "deelgemeente"),
            *_USE_COLUMNS,
            ("provider_id", "id"),
        ],
    ),
}


def period_title(period: str) -> str:
    """`2026` → "2026"; `2026-03` → "maart 2026"."""
    year, _, month = period.partition("-")
    return f"{DUTCH_MONTHS[int(month) - 1]} {year}" if month else year


def count(value: int | None) -> str:
    return "<5" if value is None else f"{value:,}".replace(",", ".")


def money(cents: int | None) -> str:
    return "<5" if cents is None else format_eur(cents)


def share(basis_points: int | None) -> str:
    if basis_points is None:
        return "–"
    whole, rest = divmod(basis_points, 100)
    return f"{whole},{rest:02d} %"


def bar(value: int | None, largest: int) -> Text:
    """A horizontal bar in eighths of a character; none for a hidden or empty value."""
    if not value or largest <= 0:
        return Text("")
    eighths = max(1, value * BAR_WIDTH * 8 // largest)
    full, part = divmod(eighths, 8)
    return Text("█" * full + ("", "▏", "▎", "▍", "▌", "▋", "▊", "▉")[part], style="cyan")


def summary(report: Mapping[str, Any]) -> str:
    totals = report["totals"]
    return (
        f"{count(totals['eligible_holders'])} kaarthouders konden hun pas gebruiken,"
        f" {count(totals['active_holders'])} deden dat (bereik {share(totals['take_up_basis_points'])});"
        f" {count(totals['checkins'])} check-ins, {money(totals['discount_cents'])} korting."
    )


def _group_table(
    title: str, label: str, rows: Sequence[Mapping[str, Any]], key: str, names: Mapping[str, str]
) -> Table:
    table = Table(title=title, title_justify="left")
    for heading in (label, "gerechtigd", "actief", "bereik", "", "check-ins", "korting"):
        table.add_column(heading, justify="left" if heading in (label, "") else "right")
    for row in rows:
        table.add_row(
            names.get(row[key], row[key]),
            count(row["eligible_holders"]),
            count(row["active_holders"]),
            share(row["take_up_basis_points"]),
            bar(row["take_up_basis_points"], 10_000),
            count(row["checkins"]),
            money(row["discount_cents"]),
        )
    return table


def _use_table(
    title: str,
    labels: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    leads: Sequence[Sequence[str]],
) -> Table:
    """Rows of check-ins (of a month, a category, a provider) with a bar of their check-ins;
    `leads` are each row's first cells, under `labels`."""
    table = Table(title=title, title_justify="left")
    for label in labels:
        table.add_column(label)
    for heading in ("check-ins", "", "actieve kaarthouders", "korting"):
        table.add_column(heading, justify="right" if heading else "left")
    largest = max((row["checkins"] for row in rows), default=0)
    for lead, row in zip(leads, rows, strict=True):
        table.add_row(
            *lead,
            count(row["checkins"]),
            bar(row["checkins"], largest),
            count(row["active_holders"]),
            money(row["discount_cents"]),
        )
    return table


def render(report: Mapping[str, Any]) -> Group:
    """Everything a reader needs on one screen or page, in the order they ask it."""
    months, categories = report["per_month"], report["per_category"]
    providers = report["per_provider"][:TOP_PROVIDERS]
    more = len(report["per_provider"]) - len(providers)
    busiest = f"de {len(providers)} drukste" + (f", {more} meer in de bestanden" if more else "")
    parts: list[Any] = [
        Text(f"Gebruik van de vrijetijdspas — {period_title(report['period'])}", style="bold"),
        Text(f"{report['first_day']} tot en met {report['last_day']}. {summary(report)}"),
        _group_table(
            "Bereik per doelgroep", "doelgroep", report["per_target_group"], "target_group", GROUPS
        ),
        _group_table(
            "Bereik per deelgemeente (waar de kaarthouder woont)",
            "deelgemeente",
            report["per_sub_municipality"],
            "sub_municipality",
            {},
        ),
    ]
    if "-" not in report["period"]:  # a year: month by month
        leads = [[period_title(r["month"])] for r in months]
        parts.append(_use_table("Per maand", ["maand"], months, leads))
    leads = [[CATEGORIES.get(r["category"], r["category"])] for r in categories]
    parts.append(_use_table("Per categorie", ["categorie"], categories, leads))
    leads = [[r["provider"], r["sub_municipality"]] for r in providers]
    parts.append(
        _use_table(f"Per aanbieder ({busiest})", ["aanbieder", "deelgemeente"], providers, leads)
    )
    parts.append(
        Text(
            f"<5: minder dan {report['min_cell']} kaarthouders; niet getoond, en ook niet wat zij"
            " deden, zodat niemand herkenbaar is. Geteld worden de check-ins die gelden"
            " (goedgekeurd en niet geannuleerd), op de dag van de activiteit.",
            style="dim",
        )
    )
    return Group(*parts)
