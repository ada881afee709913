"""The usage report on screen and in files: Dutch, "<5" for what is hidden, euros from cents,
a bar that compares rows."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook
from rich.console import Console

from vtp.tables import write_views
from vtp.usage.view import BAR_WIDTH, FILE_VIEWS, bar, period_title, render

HIDDEN = {
    "eligible_holders": None,
    "active_holders": None,
    "take_up_basis_points": None,
    "checkins": None,
    "discount_cents": None,
}
REPORT: dict[str, Any] = {
    "period": "2026",
    "first_day": "2026-01-01",
    "last_day": "2026-12-31",
    "min_cell": 5,
    "totals": {
        "eligible_holders": 1412,
        "active_holders": 968,
        "take_up_basis_points": 6855,
        "checkins": 12_345,
        "discount_cents": 1_234_550,
    },
    "per_target_group": [
        {"target_group": "disability", **HIDDEN},
        {
            "target_group": "poverty",
            "eligible_holders": 1400,
            "active_holders": 960,
            "take_up_basis_points": 6857,
            "checkins": 12_300,
            "discount_cents": 1_230_000,
        },
    ],
    "per_sub_municipality": [{"sub_municipality": "Itegem", **HIDDEN}],
    "per_month": [
        {
            "month": "2026-03",
            "checkins": 12_000,
            "active_holders": 960,
            "discount_cents": 1_200_000,
        },
        {"month": "2026-04", "checkins": 345, "active_holders": None, "discount_cents": 34_550},
    ],
    "per_category": [
        {
            "category": "sport",
            "checkins": 12_345,
            "active_holders": 968,
            "discount_cents": 1_234_550,
        }
    ],
    "per_provider": [
        {
            "provider_id": "6f1c",
            "provider": "Zwembad De Wiek",
            "sub_municipality": "Heist-Centrum",
            "checkins": 12_345,
            "active_holders": 968,
            "discount_cents": 1_234_550,
        }
    ],
}


def _screen(report: dict[str, Any]) -> str:
    console = Console(width=160, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(render(report))
    return console.export_text()


def test_the_screen_speaks_dutch_and_hides_small_groups() -> None:
    text = _screen(REPORT)
    assert "1.412 kaarthouders konden hun pas gebruiken, 968 deden dat (bereik 68,55 %)" in text
    assert "€ 12.345,50 korting" in text
    assert "maart 2026" in text and "april 2026" in text  # a year is shown month by month
    disability = next(line for line in text.splitlines() if "personen met een beperking" in line)
    assert disability.count("<5") == 4  # eligible, active, check-ins, discount
    assert "Itegem" in text and "kansentarief" in text and "Zwembad De Wiek" in text


def test_a_month_is_not_split_into_months() -> None:
    month = {**REPORT, "period": "2026-03", "per_month": REPORT["per_month"][:1]}
    assert "Per maand" not in _screen(month)
    assert "Per maand" in _screen(REPORT)


@pytest.mark.parametrize(("period", "title"), [("2026", "2026"), ("2026-12", "december 2026")])
def test_period_titles(period: str, title: str) -> None:
    assert period_title(period) == title


@given(st.integers(0, 10**9), st.integers(1, 10**9))
def test_a_bar_is_never_longer_than_the_largest_and_never_empty_for_something(
    value: int, largest: int
) -> None:
    value = min(value, largest)
    drawn = bar(value, largest).plain
    assert len(drawn) <= BAR_WIDTH
    assert (drawn == "") == (value == 0)
    assert bar(largest, largest).plain == "█" * BAR_WIDTH


def test_hidden_values_bars_nothing() -> None:
    assert bar(None, 100).plain == ""


def test_the_files_have_every_view_with_euros_and_percentages(tmp_path: Path) -> None:
    written = write_views("usage-2026", REPORT, FILE_VIEWS, tmp_path)
    assert [p.name for p in written] == [
        "usage-2026.xlsx",
        *(f"usage-2026-{view}.csv" for view in FILE_VIEWS),
    ]
    with (tmp_path / "usage-2026-per_target_group.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["eligible_holders"] == ""  # hidden: empty, not 0
    assert rows[1]["take_up_basis_points"] == "68.57"
    assert rows[1]["discount_cents"] == "12300.00"
    sheet = load_workbook(written[0])["Per doelgroep"]
    assert [c.value for c in sheet[1]][:3] == ["doelgroep", "gerechtigd", "actief"]
    assert sheet["F3"].value == 12300  # a number the sheet can add up, not text
