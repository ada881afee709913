"""Reading a referrer's existing list: CSV with a header row, comma or semicolon separated
(spreadsheets in Belgium write semicolons). Empty cells mean "not given"."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from services.cards.domain.errors import InvalidField

MAX_ROWS = 5000
REQUIRED_COLUMNS = frozenset(
    {
        "first_name",
        "last_name",
        "date_of_birth",
        "national_number",
        "target_group",
        "eligible_from",
        "eligible_until",
    }
)
KNOWN_COLUMNS = REQUIRED_COLUMNS | {
    "iban",
    "email",
    "address",
    "sub_municipality",
    "resident",
    "channel",
    "language",
    "grace_days",
    "evidence_ref",
    "issue_card",
}


@dataclass(frozen=True)
class CsvRow:
    line: int  # as a spreadsheet shows it: the header is line 1
    values: dict[str, str]


def read_rows(text: str) -> list[CsvRow]:
    text = text.removeprefix("\ufeff")  # Excel's byte order mark
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    header = {(name or "").strip() for name in reader.fieldnames or ()}
    missing = REQUIRED_COLUMNS - header
    if missing:
        raise InvalidField("csv", f"missing columns: {', '.join(sorted(missing))}")
    unknown = header - KNOWN_COLUMNS
    if unknown:
        raise InvalidField("csv", f"unknown columns: {', '.join(sorted(unknown))}")
    rows: list[CsvRow] = []
    for row in reader:
        if len(rows) >= MAX_ROWS:
            raise InvalidField("csv", f"more than {MAX_ROWS} rows; split the file")
        values = {
            (k or "").strip(): v.strip()
            for k, v in row.items()
            if k is not None and isinstance(v, str) and v.strip()
        }
        if values:
            rows.append(CsvRow(reader.line_num, values))
    return rows


def truthy(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.lower() in {"1", "true", "yes", "ja", "y", "j"}
