"""E-mail over SMTP: one connection per pass of the worker, one outcome per message."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib
from email_validator import EmailNotValidError, validate_email

from services.notifications.outcomes import SENT, Outcome, permanent, smtp_outcome, transient


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime: tuple[str, str] = ("application", "pdf")


@dataclass(frozen=True)
class Email:
    message_id: str
    to: str
    subject: str
    body: str
    correlation_id: str
    language: str
    attachments: tuple[Attachment, ...] = ()


def invalid_address(address: str) -> str | None:
    """Why the address can never receive mail, or None. Syntax only: no DNS at send time."""
    try:
        validate_email(address, check_deliverability=False)
    except EmailNotValidError as exc:
        return f"invalid address: {exc}"
    return None


def build(email: Email, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to
    message["Subject"] = email.subject
    # The delivery id: a receiver (or an operator) can tell a resend from a new message.
    message["Message-ID"] = f"<{email.message_id}@vrijetijdspas>"
    message["X-Correlation-ID"] = email.correlation_id
    message["Content-Language"] = "nl-BE" if email.language == "nl" else email.language
    message.set_content(email.body)
    for attachment in email.attachments:
        message.add_attachment(
            attachment.content,
            maintype=attachment.mime[0],
            subtype=attachment.mime[1],
            filename=attachment.filename,
        )
    return message


class EmailChannel:
    def __init__(self, host: str, port: int, timeout_s: float, sender: str) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.sender = sender

    async def send_all(self, emails: list[Email]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        pending = []
        for email in emails:
            reason = invalid_address(email.to)
            outcomes.append(permanent(reason) if reason else SENT)
            if reason is None:
                pending.append(len(outcomes) - 1)
        if not pending:
            return outcomes
        smtp = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout_s,
            use_tls=False,
            start_tls=False,
        )
        try:
            await smtp.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            for i in pending:
                outcomes[i] = transient(f"SMTP server unreachable: {exc}")
            return outcomes
        try:
            for n, i in enumerate(pending):
                try:
                    await smtp.send_message(build(emails[i], self.sender))
                except aiosmtplib.SMTPRecipientsRefused as exc:
                    refusals = list(exc.recipients)
                    code = refusals[0].code if refusals else 550
                    outcomes[i] = smtp_outcome(code, f"recipient refused: {exc}")
                except aiosmtplib.SMTPResponseException as exc:
                    outcomes[i] = smtp_outcome(exc.code, exc.message)
                except (aiosmtplib.SMTPException, OSError) as exc:
                    # The connection is gone: this and every later message wait for a retry.
                    for j in pending[n:]:
                        outcomes[j] = transient(f"SMTP connection lost: {exc}")
                    break
        finally:
            if smtp.is_connected:
                try:
                    await smtp.quit()
                except (aiosmtplib.SMTPException, OSError):
                    smtp.close()
        return outcomes
