"""Reading a referrer's existing list: CSV with a header row, comma or semicolon separated
(spreadsheets in Belgium write semicolons). Empty cells mean "not given".

Each record must fit on one physical line: a stray quote would otherwise make the csv
module read every following line into one record, and those people would vanish from the
report. A line that cannot be read is reported on its own; the other lines still count."""

from __future__ import annotations

import csv
import re
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
    # The organisation that follows the person: the program administrator's lists must name
    # it; a referrer's own is taken when it is left out.
    "referrer_org_id",
}


# The line ends the csv module knows (outside quotes): \r\n, \r and \n.
_LINE_END = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class CsvRow:
    line: int  # as a spreadsheet shows it: the header is line 1
    values: dict[str, str]
    problem: str | None = None  # why the line could not be read; `values` is then empty


def _cells(line: str, delimiter: str) -> list[str]:
    """One physical line's cells. Raises ValueError with the reason when it is not one
    complete record."""
    # A second (empty) line behind it shows whether the record would run on.
    reader = csv.reader(iter((line, "")), delimiter=delimiter)
    try:
        cells = next(reader, [])
    except csv.Error as exc:
        limit = csv.field_size_limit()
        if "field limit" in str(exc):
            raise ValueError(f"a cell is longer than {limit} characters") from None
        raise ValueError(f"cannot be read as CSV ({exc})") from None
    if reader.line_num > 1:
        raise ValueError(
            'unbalanced quote: a cell opened with " is not closed on this line'
            " (a record must fit on one line)"
        )
    return cells


def read_rows(text: str) -> list[CsvRow]:
    text = text.removeprefix("\ufeff")  # Excel's byte order mark
    lines = _LINE_END.split(text)
    first_line = lines[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    try:
        names = [name.strip() for name in _cells(first_line, delimiter)]
    except ValueError as exc:
        raise InvalidField("csv", f"line 1 (the header): {exc}") from None
    header = set(names)
    missing = REQUIRED_COLUMNS - header
    if missing:
        raise InvalidField("csv", f"missing columns: {', '.join(sorted(missing))}")
    unknown = header - KNOWN_COLUMNS - {""}
    if unknown:
        raise InvalidField("csv", f"unknown columns: {', '.join(sorted(unknown))}")
    rows: list[CsvRow] = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        if len(rows) >= MAX_ROWS:
            raise InvalidField("csv", f"more than {MAX_ROWS} rows; split the file")
        try:
            cells = _cells(line, delimiter)
        except ValueError as exc:
            rows.append(CsvRow(number, {}, str(exc)))
            continue
        # Cells beyond the header are ignored, as are empty ones ("not given").
        values = {
            name: cell.strip()
            for name, cell in zip(names, cells, strict=False)
            if name and cell.strip()
        }
        if values:
            rows.append(CsvRow(number, values))
    return rows


def truthy(value: str | None, default: bool) -> bool:
    if value is None:
        return default
    return value.lower() in {"1", "true", "yes", "ja", "y", "j"}
