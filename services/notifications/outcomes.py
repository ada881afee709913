"""What a delivery attempt came to, and which failures are worth another try."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
# A partner's webhook URL can carry a token in its path or query.
_URL = re.compile(r"\bhttps?://\S+", re.IGNORECASE)


def without_addresses(text: str) -> str:
    """Error texts from mail servers quote the address, HTTP errors the URL; logs, stored
    errors and operators' events must not."""
    return _ADDRESS.sub("<address>", _URL.sub("<url>", text))


@dataclass(frozen=True)
class Outcome:
    sent: bool
    permanent: bool = False
    error: str = ""
    # Not attempted at all (its partner failed earlier in the pass): no try is counted, and
    # the delivery waits this many seconds, with its partner.
    deferred_s: float | None = None
    # A final refusal of the recipient's address itself (an SMTP 5xx to RCPT TO, or an
    # address that is not one): asking again, or sending anything else there, is pointless.
    address_refused: bool = False
    # A refusal of the recipient's address for now (an SMTP 4xx to RCPT TO: a full mailbox,
    # a mailbox unavailable): worth another try, but if that is the answer until we give
    # up, it is the address that does not work (fallback.py), not our mail relay.
    address_deferred: bool = False


SENT = Outcome(sent=True)


# An outcome's error is stored, listed by the operators' API and logged: it is masked
# before it is cut, so that half an address cannot slip past the pattern.
def transient(error: str) -> Outcome:
    return Outcome(sent=False, permanent=False, error=without_addresses(error)[:300])


def permanent(error: str) -> Outcome:
    return Outcome(sent=False, permanent=True, error=without_addresses(error)[:300])


def deferred(reason: str, delay_s: float) -> Outcome:
    return Outcome(sent=False, error=without_addresses(reason)[:300], deferred_s=delay_s)


def http_outcome(status: int) -> Outcome:
    """2xx delivered; 408, 425, 429 and 5xx are the receiver's temporary trouble; any other
    answer (410 Gone, 404, 400, 401…) will not change by asking again."""
    if 200 <= status < 300:
        return SENT
    if status in (408, 425, 429) or status >= 500:
        return transient(f"HTTP {status}")
    return permanent(f"HTTP {status}: the receiver refused the webhook")


def address_refused(error: str) -> Outcome:
    """The recipient's address will never take mail (see Outcome.address_refused)."""
    return replace(permanent(error), address_refused=True)


def smtp_outcome(code: int, message: str, *, to_recipient: bool = False) -> Outcome:
    """SMTP 5xx is a final refusal (unknown mailbox, rejected address); 4xx means later.
    `to_recipient`: the server's answer to RCPT TO, i.e. about the address."""
    text = f"SMTP {code}: {message}"
    if not 500 <= code < 600:
        return replace(transient(text), address_deferred=to_recipient and 400 <= code < 500)
    return address_refused(text) if to_recipient else permanent(text)


def unexpected(exc: BaseException) -> Outcome:
    """A failure nobody foresaw (a bug, a malformed row): worth another try after a fix,
    and dead after the usual number of attempts if none comes."""
    return transient(f"unexpected {type(exc).__name__}: {exc}")
