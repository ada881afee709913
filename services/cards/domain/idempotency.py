"""Idempotency keys (the IETF draft's `Idempotency-Key` header): which keys are accepted,
how long one is remembered, and when a repeat is refused. No I/O: the API reads the header,
the repository keeps the keys."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from services.cards.domain.errors import InvalidField

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# Long enough for any retry a browser or a person makes, short enough that the table stays
# small; a key sent again after that counts as new.
RETENTION = timedelta(hours=24)
_PRINTABLE_ASCII = frozenset(map(chr, range(0x20, 0x7F)))


def parse_key(values: Sequence[str]) -> str | None:
    """The key from the header's values (none: no key). The value is never echoed: a
    client may have put anything in it."""
    if not values:
        return None
    if len(values) > 1:
        raise InvalidField(HEADER, "sent more than once; send one key per request")
    key = values[0]
    if not key:
        raise InvalidField(HEADER, f"is empty; send 1 to {MAX_KEY_LENGTH} characters")
    if len(key) > MAX_KEY_LENGTH:
        raise InvalidField(
            HEADER, f"is {len(key)} characters long; at most {MAX_KEY_LENGTH} are accepted"
        )
    if not _PRINTABLE_ASCII.issuperset(key):
        raise InvalidField(
            HEADER, "may hold only printable ASCII characters (letters, digits, punctuation)"
        )
    return key


def check_same_request(stored_fingerprint: bytes, fingerprint: bytes) -> None:
    """A key names one request: reusing it for another must not replay (or hide) the
    first one's answer."""
    if stored_fingerprint != fingerprint:
        raise InvalidField(
            HEADER,
            "already used for another request (another path or body) in the last"
            f" {RETENTION.total_seconds() / 3600:.0f} hours; send a new key for a new request",
        )
