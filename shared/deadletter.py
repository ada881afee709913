"""Dead letters: a message we can never process is copied, untouched (an oversized one cut
short), to the dead-letter topic with the reason in its headers, through the outbox of the
same transaction that records the rest of the batch — so it is neither lost nor blocking
its partition."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from hashlib import blake2b

from shared.envelope import Headers, sendable_key
from shared.outbox import OutgoingRecord
from shared.topics import DEAD_LETTER_TOPIC

_DLQ_NAMESPACE = uuid.UUID("6f1c8a52-4d0e-4e57-9a7e-2f1c1b0f8d11")
REASON_HEADER = "dlq_reason"
# What an oversized message keeps of its payload: the consumers' default limit, far below
# the broker's (~1 MiB). A whole copy of a message near the broker's limit, with the dlq_*
# headers added, is refused by the broker, and the relay would offer it again for ever.
OVERSIZED_KEPT_BYTES = 64 * 1024


class DeadLetterReason(StrEnum):
    MALFORMED_JSON = "malformed_json"
    INVALID_ENVELOPE = "invalid_envelope"
    SCHEMA_VIOLATION = "schema_violation"
    UNKNOWN_VERSION = "unknown_version"
    OVERSIZED = "oversized"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_DEVICE = "unknown_device"
    DEVICE_REVOKED = "device_revoked"
    # A cancellation of a check-in of another provider than its device's, or naming one.
    WRONG_PROVIDER = "wrong_provider"
    REPLAYED = "replayed"
    IN_THE_FUTURE = "in_the_future"
    OUT_OF_WINDOW = "out_of_window"
    HANDLER_ERROR = "handler_error"
    # An answer about something the consumer does not have as it says (finance's settlement
    # of a payment that does not exist, or of another amount): for a person to look at.
    UNMATCHED = "unmatched"


@dataclass(frozen=True)
class SourceRecord:
    """Where a message came from, and its raw bytes."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    # When the broker took it, on a topic the broker stamps (shared/topics.Topic.broker_time);
    # None when the time is the producer's, which nothing may trust.
    appended_at: datetime | None = None


@dataclass(frozen=True)
class DeadLetter:
    source: SourceRecord
    reason: DeadLetterReason
    detail: str


def dead_letter_record(letter: DeadLetter, consumer: str) -> OutgoingRecord:
    src = letter.source
    # The id is derived from the source position and body, so a redelivered poison message
    # produces the same outbox row and is dead-lettered once. The body too: a topic made
    # anew (the embedded broker keeps topics in memory) numbers its records from 0 again,
    # and another message at a position seen within the id's retention would be dropped.
    body = blake2b(src.value or b"", digest_size=8).hexdigest()
    event_id = uuid.uuid5(
        _DLQ_NAMESPACE, f"{consumer}/{src.topic}/{src.partition}/{src.offset}/{body}"
    )
    extra = {
        REASON_HEADER: letter.reason.value,
        "dlq_detail": letter.detail[:500],
        "dlq_consumer": consumer,
        "dlq_source_topic": src.topic,
        "dlq_source_partition": str(src.partition),
        "dlq_source_offset": str(src.offset),
        "dlq_at": datetime.now(UTC).isoformat(),
    }
    payload = src.value or b""
    if letter.reason is DeadLetterReason.OVERSIZED and len(payload) > OVERSIZED_KEPT_BYTES:
        extra["dlq_truncated_from_bytes"] = str(len(payload))
        payload = payload[:OVERSIZED_KEPT_BYTES]
    # Kafka allows a header without a value (aiokafka gives None): kept as empty bytes, or
    # storing the letter would fail, and its whole batch with it, on every redelivery.
    kept = [(sendable_key(k), v or b"") for k, v in src.headers if not k.startswith("dlq_")]
    return OutgoingRecord(
        event_id=str(event_id),
        topic=DEAD_LETTER_TOPIC,
        key=src.key or b"",
        # backslashreplace: a detail quoting a lone surrogate from a body must not raise.
        headers=kept + [(k, v.encode(errors="backslashreplace")) for k, v in extra.items()],
        payload=payload,
        retain=True,
    )
