from __future__ import annotations

import csv
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.cards.card_numbers import (
    card_number_from_qr,
    is_valid_card_number,
    new_card_number,
    qr_payload,
)
from services.cards.card_print import card_pdf
from services.cards.domain.csv_rows import read_rows, truthy
from services.cards.domain.errors import InvalidField

HEADER = (
    "first_name;last_name;date_of_birth;national_number;target_group;eligible_from;eligible_until"
)


def test_semicolons_bom_and_blank_cells() -> None:
    text = (
        "\ufeff"
        + HEADER
        + ";email\nAn;Peeters;1980-01-01;80010100123;poverty;2026-01-01;2026-12-31;\n\n"
    )
    rows = read_rows(text)
    assert len(rows) == 1
    assert rows[0].line == 2
    assert "email" not in rows[0].values
    assert rows[0].values["first_name"] == "An"


def test_missing_and_unknown_columns_are_named() -> None:
    with pytest.raises(InvalidField, match="csv: missing columns: national_number"):
        read_rows("first_name,last_name,date_of_birth,target_group,eligible_from,eligible_until\n")
    with pytest.raises(InvalidField, match="unknown columns: shoe_size"):
        read_rows(HEADER.replace(";", ",") + ",shoe_size\n")


ROW = "An;Peeters;1980-01-01;80010100123;poverty;2026-01-01;2026-12-31"


def test_a_stray_quote_rejects_its_line_only() -> None:
    text = "\n".join(
        [HEADER, ROW, 'Jan;"De Smet;1980-01-01;x;poverty;2026-01-01;2026-12-31', ROW, ROW, ""]
    )
    rows = read_rows(text)
    assert [(r.line, r.problem is None) for r in rows] == [
        (2, True),
        (3, False),
        (4, True),
        (5, True),
    ]
    assert rows[1].problem is not None and rows[1].problem.startswith("unbalanced quote")
    assert rows[1].values == {}
    assert rows[2].values["first_name"] == "An"


def test_a_quoted_cell_on_one_line_is_fine() -> None:
    text = f'{HEADER};address\n{ROW};"Kerkstraat 1; 2220 Heist"\r\n'
    [row] = read_rows(text)
    assert row.problem is None and row.values["address"] == "Kerkstraat 1; 2220 Heist"


def test_an_oversized_cell_rejects_its_line_only() -> None:
    huge = "x" * (csv.field_size_limit() + 1)
    rows = read_rows(f"{HEADER}\n{ROW}\nAn;{huge};1980-01-01\n{ROW}\n")
    assert [r.line for r in rows] == [2, 3, 4]
    assert rows[1].problem == f"a cell is longer than {csv.field_size_limit()} characters"
    assert rows[0].problem is None and rows[2].problem is None


def test_an_unreadable_header_is_refused_naming_the_line() -> None:
    with pytest.raises(InvalidField, match=r"csv: line 1 .*unbalanced quote"):
        read_rows('"first_name;' + HEADER + "\n" + ROW + "\n")


def test_truthy() -> None:
    assert truthy(None, True) and truthy("ja", False) and not truthy("nee", True)


@given(st.sampled_from(["6299", "1234", "0000"]))
def test_card_numbers_and_qr(prefix: str) -> None:
    number = new_card_number(prefix)
    assert number.startswith(prefix) and is_valid_card_number(number)
    assert card_number_from_qr(qr_payload(number)) == number
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert card_number_from_qr(qr_payload(wrong)) is None
    assert card_number_from_qr(number) is None


def test_printable_card_is_credit_card_sized() -> None:
    pdf = card_pdf("6299123456782", None)
    assert pdf.startswith(b"%PDF")
    # The page the PDF itself declares (one page), in points: ISO/IEC 7810 ID-1, 85.60 x 53.98 mm.
    boxes = re.findall(rb"/MediaBox \[ 0 0 ([0-9.]+) ([0-9.]+) \]", pdf)
    assert len(boxes) == 1
    width_mm, height_mm = (float(points) / 72 * 25.4 for points in boxes[0])
    assert abs(width_mm - 85.6) < 0.01 and abs(height_mm - 53.98) < 0.01
    assert len(pdf) > 1000
