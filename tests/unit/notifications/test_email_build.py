"""The e-mail as it goes over the wire: whatever the text, a standard mail reader gets back
exactly the subject, body, headers and attachments we meant."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage

from hypothesis import given
from hypothesis import strategies as st

from services.notifications.email_channel import Attachment, Email, build

SENDER = "vrijetijdspas@heist.example"


def _read(raw: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _mail(subject: str, body: str, **extra: object) -> Email:
    return Email(
        message_id="01a2b3c4-0000-7000-8000-000000000001",
        to="an.peeters@example.org",
        subject=subject,
        body=body,
        correlation_id="01a2b3c4-corr",
        language="nl",
        **extra,  # type: ignore[arg-type]
    )


def test_a_dutch_refund_mail_reads_back_exactly() -> None:
    body = "Beste An,\n\nJe krijgt € 12,50 terug voor zwemmen op 27/11/2026.\n"
    mail = _read(build(_mail("Vrijetijdspas: je krijgt € 12,50 terug", body), SENDER))
    assert mail["Subject"] == "Vrijetijdspas: je krijgt € 12,50 terug"
    assert mail["From"] == SENDER
    assert mail["To"] == "an.peeters@example.org"
    assert mail["Message-ID"] == "<01a2b3c4-0000-7000-8000-000000000001@vrijetijdspas>"
    assert mail["X-Correlation-ID"] == "01a2b3c4-corr"
    assert mail["Content-Language"] == "nl-BE"
    part = mail.get_body(("plain",))
    assert part is not None
    assert part.get_content() == body


def test_the_printable_card_travels_as_an_attachment() -> None:
    pdf = b"%PDF-1.4\n\x00\xff binary"
    raw = build(_mail("Kaart", "Zie bijlage.\n", attachments=(Attachment("k.pdf", pdf),)), SENDER)
    mail = _read(raw)
    attachments = list(mail.iter_attachments())
    assert [(a.get_filename(), a.get_content_type()) for a in attachments] == [
        ("k.pdf", "application/pdf")
    ]
    assert attachments[0].get_content() == pdf
    part = mail.get_body(("plain",))
    assert part is not None
    assert part.get_content() == "Zie bijlage.\n"


# Text as templates produce it: any printable characters, lines ending in a newline.
_line = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
    max_size=120,
)


@given(subject=_line.filter(lambda s: s.strip() == s), lines=st.lists(_line, max_size=8))
def test_any_subject_and_body_survive_the_encoding(subject: str, lines: list[str]) -> None:
    body = "".join(f"{line}\n" for line in lines)
    mail = _read(build(_mail(subject, body), SENDER))
    assert str(mail["Subject"] or "") == subject
    part = mail.get_body(("plain",))
    assert part is not None
    assert part.get_content() == body


def test_a_line_break_in_a_correlation_id_cannot_add_a_header() -> None:
    mail = Email(
        message_id="01a2b3c4-0000-7000-8000-000000000002",
        to="an.peeters@example.org",
        subject="Vrijetijdspas",
        body="Hallo\n",
        correlation_id="abc\r\nBcc: someone@example.org",
        language="nl",
    )
    parsed = _read(build(mail, SENDER))
    assert parsed["Bcc"] is None
    assert parsed["X-Correlation-ID"] == "abc??Bcc: someone@example.org"
