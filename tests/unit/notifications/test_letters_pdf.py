"""A printed letter reaches its reader: every name and street on the envelope and in the
greeting is printed with real letters, never a black box, whatever alphabet the name came
in; the euro sign and Dutch accents stay as they are."""

from __future__ import annotations

import io
from datetime import date

import pytest
from pypdf import PdfReader

from services.notifications.printing import Letter, letters_pdf, printable


def _text(letter: Letter) -> str:
    reader = PdfReader(io.BytesIO(letters_pdf([letter])))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_names_outside_the_standard_font_are_printed_with_their_base_letters() -> None:
    text = _text(
        Letter(
            ("Łukasz Wiśniewski", "Ştefan cel Mare-straat 3", "2220 Heist-op-den-Berg"),
            "Vrijetijdspas: u krijgt € 6,25 terug",
            "Beste Şükrü Öztürk,\n\nU krijgt € 6,25 terug, één keer.\n\nVrijetijdspas",
            date(2026, 5, 4),
        )
    )
    assert "■" not in text
    assert "Lukasz Wisniewski" in text
    assert "Stefan cel Mare-straat 3" in text
    assert "Beste Sükrü Öztürk," in text
    assert "U krijgt € 6,25 terug, één keer." in text


@pytest.mark.parametrize(
    ("written", "printed"),
    [
        ("An Peeters", "An Peeters"),
        ("Françoise Dubœuf — € 12,50", "Françoise Dubœuf — € 12,50"),
        ("Đorđe Ćirić", "Dorde Ciric"),
        ("Łódź", "Lódz"),  # ó is in the font, ł and ź are not
        ("Ağaoğlu İsmail", "Agaoglu Ismail"),
        ("Ａｎ", "An"),  # full-width letters
        ("Анна", "????"),  # no Latin base letter: a visible gap, not a black box
    ],
)
def test_printable(written: str, printed: str) -> None:
    assert printable(written) == printed
