"""PDFs: the printable card for referrers, and the daily batch of letters for people
without e-mail (one A4 page per letter, the address where a window envelope shows it)."""

from __future__ import annotations

import io
import unicodedata
from dataclasses import dataclass
from datetime import date

from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
from reportlab.pdfgen.canvas import Canvas

_FONT = "Helvetica"
_CARD_W, _CARD_H = 85.6 * mm, 54 * mm  # ISO/IEC 7810 ID-1, the size of a bank card


@dataclass(frozen=True)
class PrintableCard:
    card_number: str
    eligible_until: date


@dataclass(frozen=True)
class Letter:
    address_lines: tuple[str, ...]
    subject: str
    body: str
    dated: date


# The standard PDF fonts (Helvetica) draw the WinAnsi characters (cp1252) only: any other
# would print as a black box, in a name or a street on the envelope too. Such a character is
# printed as its base letter (ś → s, Ş → S, ł → l); one without a Latin base as "?".
_NO_DECOMPOSITION = str.maketrans(
    {"ł": "l", "Ł": "L", "đ": "d", "Đ": "D", "ı": "i", "ħ": "h", "Ħ": "H", "ŧ": "t", "Ŧ": "T"}
)


def _drawable(char: str) -> bool:
    try:
        char.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """`text` as the standard font can print it: unchanged where it can."""
    if _drawable(text):
        return text
    out = []
    for char in text:
        if _drawable(char):
            out.append(char)
            continue
        decomposed = unicodedata.normalize("NFKD", char.translate(_NO_DECOMPOSITION))
        base = "".join(c for c in decomposed if not unicodedata.combining(c) and _drawable(c))
        out.append(base or "?")
    return "".join(out)


def cards_pdf(cards: list[PrintableCard]) -> bytes:
    """One card per page, at its real size, with the number as text and as a QR code."""
    buffer = io.BytesIO()
    pdf = Canvas(buffer, pagesize=A4, invariant=True)
    pdf.setTitle("Vrijetijdspas")
    for card in cards:
        x, y = 20 * mm, A4[1] - 20 * mm - _CARD_H
        pdf.roundRect(x, y, _CARD_W, _CARD_H, 3 * mm)
        pdf.setFont(f"{_FONT}-Bold", 12)
        pdf.drawString(x + 5 * mm, y + _CARD_H - 9 * mm, "Vrijetijdspas")
        pdf.setFont(_FONT, 11)
        pdf.drawString(x + 5 * mm, y + 14 * mm, _grouped(card.card_number))
        pdf.setFont(_FONT, 8)
        pdf.drawString(x + 5 * mm, y + 8 * mm, f"Geldig tot {card.eligible_until:%d/%m/%Y}")
        qr = QrCodeWidget(card.card_number)
        x0, y0, x1, y1 = qr.getBounds()
        size = 30 * mm
        drawing = Drawing(size, size, transform=[size / (x1 - x0), 0, 0, size / (y1 - y0), 0, 0])
        drawing.add(qr)
        renderPDF.draw(drawing, pdf, x + _CARD_W - size - 4 * mm, y + 4 * mm)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def _grouped(card_number: str) -> str:
    return " ".join(card_number[i : i + 4] for i in range(0, len(card_number), 4))


def letters_pdf(letters: list[Letter]) -> bytes:
    buffer = io.BytesIO()
    pdf = Canvas(buffer, pagesize=A4, invariant=True)
    pdf.setTitle("Vrijetijdspas — brieven")
    width, height = A4
    left, text_width = 25 * mm, width - 50 * mm
    for letter in letters:
        pdf.setFont(_FONT, 11)
        y = height - 50 * mm  # the window of a DL envelope
        for line in letter.address_lines:
            pdf.drawString(110 * mm, y, printable(line))
            y -= 5 * mm
        y = height - 95 * mm
        pdf.drawString(left, y, f"Heist-op-den-Berg, {letter.dated:%d/%m/%Y}")
        y -= 12 * mm
        pdf.setFont(f"{_FONT}-Bold", 11)
        for line in simpleSplit(printable(letter.subject), f"{_FONT}-Bold", 11, text_width):
            pdf.drawString(left, y, line)
            y -= 6 * mm
        y -= 4 * mm
        pdf.setFont(_FONT, 11)
        for paragraph in printable(letter.body).split("\n"):
            for line in simpleSplit(paragraph, _FONT, 11, text_width) or [""]:
                pdf.drawString(left, y, line)
                y -= 5.5 * mm
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()
