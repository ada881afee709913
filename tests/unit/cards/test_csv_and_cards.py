from __future__ import annotations

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
