"""Budget lines as finance reads them. A line is a target group, whose code (`poverty`) is
no word for a reader: the mail names the line as the municipality does."""

from __future__ import annotations

from services.notifications.messages import Language

BUDGET_LINES: dict[Language, dict[str, str]] = {
    "nl": {
        "poverty": "kansentarief",
        "disability": "personen met een beperking",
        "senior": "senioren",
    },
    "en": {
        "poverty": "opportunity tariff",
        "disability": "people with a disability",
        "senior": "seniors",
    },
}


def budget_line_name(code: str, language: Language) -> str:
    """The line's name in `language`; a line the policy added later, as its code."""
    return BUDGET_LINES[language].get(code, code)
