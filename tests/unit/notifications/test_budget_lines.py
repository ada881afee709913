"""Finance reads a budget line by its name, not by the target group's code."""

from __future__ import annotations

import pytest

from services.notifications.budget_lines import budget_line_name
from services.notifications.messages import Eur, render


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("poverty", "kansentarief"),
        ("disability", "personen met een beperking"),
        ("senior", "senioren"),
        ("youth", "youth"),  # a line the policy added later: its code
    ],
)
def test_dutch_names_of_the_budget_lines(code: str, name: str) -> None:
    assert budget_line_name(code, "nl") == name


def test_english_readers_get_english_names() -> None:
    assert budget_line_name("poverty", "en") == "opportunity tariff"
    assert budget_line_name("youth", "en") == "youth"


def test_the_finance_mail_names_the_line_in_dutch() -> None:
    message = render(
        "budget_threshold",
        "nl",
        "Financiële dienst",
        line=budget_line_name("poverty", "nl"),
        year=2026,
        percent=80,
        spent=Eur(8_000_00),
        budget=Eur(10_000_00),
    )
    assert message.subject == "Vrijetijdspas: budgetlijn kansentarief heeft 80% bereikt"
    assert "poverty" not in message.subject + message.body
