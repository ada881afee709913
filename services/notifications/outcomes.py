"""What a delivery attempt came to, and which failures are worth another try."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Outcome:
    sent: bool
    permanent: bool = False
    error: str = ""


SENT = Outcome(sent=True)


def transient(error: str) -> Outcome:
    return Outcome(sent=False, permanent=False, error=error[:300])


def permanent(error: str) -> Outcome:
    return Outcome(sent=False, permanent=True, error=error[:300])


def http_outcome(status: int) -> Outcome:
    """2xx delivered; 408, 425, 429 and 5xx are the receiver's temporary trouble; any other
    answer (410 Gone, 404, 400, 401…) will not change by asking again."""
    if 200 <= status < 300:
        return SENT
    if status in (408, 425, 429) or status >= 500:
        return transient(f"HTTP {status}")
    return permanent(f"HTTP {status}: the receiver refused the webhook")


def smtp_outcome(code: int, message: str) -> Outcome:
    """SMTP 5xx is a final refusal (unknown mailbox, rejected address); 4xx means later."""
    text = f"SMTP {code}: {message}"
    return permanent(text) if 500 <= code < 600 else transient(text)
