"""The printable card: a credit-card sized PDF (ID-1, 85.60 × 53.98 mm) with the card
number and its QR code. It carries no name: a lost card tells its finder nothing."""

from __future__ import annotations

import io
from datetime import date

import qrcode
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from services.cards.card_numbers import qr_payload

CARD_WIDTH = 85.60 * mm
CARD_HEIGHT = 53.98 * mm
_MARGIN = 4 * mm
_QR_SIZE = 30 * mm


def _qr_matrix(payload: str) -> list[list[bool]]:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
    code.add_data(payload)
    code.make(fit=True)
    matrix: list[list[bool]] = code.get_matrix()
    return matrix


def _grouped(card_number: str) -> str:
    return " ".join(card_number[i : i + 4] for i in range(0, len(card_number), 4))


def card_pdf(card_number: str, valid_until: date | None, title: str = "Vrijetijdspas") -> bytes:
    buffer = io.BytesIO()
    pdf = Canvas(buffer, pagesize=(CARD_WIDTH, CARD_HEIGHT))
    pdf.setTitle(f"{title} {card_number}")
    pdf.setFont("Helvetica-Bold", 13)
    pdf.drawString(_MARGIN, CARD_HEIGHT - _MARGIN - 10, title)
    pdf.setFont("Helvetica", 9)
    pdf.drawString(_MARGIN, _MARGIN + 12, _grouped(card_number))
    if valid_until is not None:
        pdf.setFont("Helvetica", 7)
        pdf.drawString(_MARGIN, _MARGIN + 2, f"geldig tot {valid_until:%d/%m/%Y}")
    matrix = _qr_matrix(qr_payload(card_number))
    module = _QR_SIZE / len(matrix)
    left = CARD_WIDTH - _MARGIN - _QR_SIZE
    top = CARD_HEIGHT - _MARGIN
    for row, cells in enumerate(matrix):
        for col, dark in enumerate(cells):
            if dark:
                pdf.rect(
                    left + col * module, top - (row + 1) * module, module, module, stroke=0, fill=1
                )
    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
