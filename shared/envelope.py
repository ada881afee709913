"""CloudEvents (binary mode) over Kafka: the attributes travel in headers, the body is JSON.

The header names follow the CloudEvents Kafka protocol binding (`ce_id`, `ce_type`, …);
`correlation_id` and `causation_id` are our extensions, carried on every hop so that one
check-in can be followed through all services.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.ids import uuid7

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
MAX_HEADER_BYTES = 1024

Headers = list[tuple[str, bytes]]
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_TRACING_HEADERS = frozenset({"correlation_id", "causation_id"})


def key_bytes(key: str) -> bytes:
    """A header key's bytes as they were on the wire, also when they are not UTF-8."""
    return key.encode("utf-8", "surrogateescape")


def is_utf8(key: str) -> bool:
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def sendable_key(key: str) -> str:
    """The key itself, or, if it is not UTF-8, its bytes written out (`\\xff`): a producer
    can only send a key it can encode."""
    return (
        key
        if key.isprintable() or is_utf8(key)
        else key_bytes(key).decode(errors="backslashreplace")
    )


class EnvelopeError(ValueError):
    """The headers do not form a valid event envelope (missing or malformed attribute)."""


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: uuid.UUID = Field(default_factory=uuid7)
    type: str
    source: str
    time: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str | None = None
    correlation_id: str
    causation_id: str | None = None

    def headers(self) -> Headers:
        pairs = {
            "ce_specversion": SPEC_VERSION,
            "ce_id": str(self.id),
            "ce_type": self.type,
            "ce_source": self.source,
            "ce_time": self.time.isoformat(),
            "content-type": CONTENT_TYPE,
            "correlation_id": self.correlation_id,
        }
        if self.subject is not None:
            pairs["ce_subject"] = self.subject
        if self.causation_id is not None:
            pairs["causation_id"] = self.causation_id
        return [(k, v.encode()) for k, v in pairs.items()]

    def caused(self, *, type: str, source: str, subject: str | None = None) -> Envelope:
        """The envelope of an event this event caused: same correlation, causation = us."""
        return Envelope(
            type=type,
            source=source,
            subject=subject,
            correlation_id=self.correlation_id,
            causation_id=str(self.id),
        )


def new_envelope(
    *, type: str, source: str, subject: str | None = None, correlation_id: str | None = None
) -> Envelope:
    """An envelope that starts a new chain: its correlation id is its own id unless given."""
    event_id = uuid7()
    return Envelope(
        id=event_id,
        type=type,
        source=source,
        subject=subject,
        correlation_id=correlation_id or str(event_id),
    )


def parse_headers(
    raw: Sequence[tuple[str, bytes]] | Iterable[tuple[str, bytes]] | None,
) -> Envelope:
    """Read the envelope back; raises EnvelopeError with a reason an operator can act on."""
    values: dict[str, str] = {}
    for key, value in raw or ():
        # A key that is not UTF-8 reaches us with its bytes escaped (shared/fetch_guard.py);
        # nothing could send it on. (isprintable first: one cheap test for the keys that
        # are fine.)
        if not key.isprintable() and not is_utf8(key):
            raise EnvelopeError(f"header key {key_bytes(key)!r} is not UTF-8")
        if value is None:
            continue
        if len(value) > MAX_HEADER_BYTES:
            raise EnvelopeError(f"header {key!r} is longer than {MAX_HEADER_BYTES} bytes")
        try:
            text = values[key] = value.decode()
        except UnicodeDecodeError as exc:
            raise EnvelopeError(f"header {key!r} is not UTF-8") from exc
        # Envelope values are copied into the headers of the events this one causes and
        # into logs and text columns: PostgreSQL refuses NUL, a line break forges log lines.
        # (isprintable first: one cheap test for the values that are fine.)
        if (
            not text.isprintable()
            and _CONTROL.search(text)
            and (key.startswith("ce_") or key in _TRACING_HEADERS)
        ):
            raise EnvelopeError(f"header {key!r} contains a control character")
    if values.get("ce_specversion") != SPEC_VERSION:
        raise EnvelopeError(
            f"unsupported or missing ce_specversion {values.get('ce_specversion')!r}"
        )
    for required in ("ce_id", "ce_type", "ce_source", "ce_time"):
        if required not in values:
            raise EnvelopeError(f"missing header {required!r}")
    try:
        event_id = uuid.UUID(values["ce_id"])
        time = datetime.fromisoformat(values["ce_time"])
    except ValueError as exc:
        raise EnvelopeError(f"malformed ce_id or ce_time: {exc}") from exc
    if time.tzinfo is None:
        raise EnvelopeError("ce_time must carry a UTC offset")
    return Envelope(
        id=event_id,
        type=values["ce_type"],
        source=values["ce_source"],
        time=time,
        subject=values.get("ce_subject"),
        correlation_id=values.get("correlation_id") or str(event_id),
        causation_id=values.get("causation_id"),
    )
