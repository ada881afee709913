"""What is in the dead-letter topic, and which of it can be sent back once the cause is gone.

Pure: records in, summaries and records to send out. Reading and sending are the command's
(`vtp/operations/deadletters_cli.py`).

A dead letter keeps its message's original key, value and headers and adds `dlq_*` headers
(shared/deadletter.py). Sending it back means publishing that original to its source topic
again: every consumer of the topic receives it, and those that had processed it already
find its event id in their inbox and change nothing.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.deadletter import REASON_HEADER, DeadLetterReason
from shared.envelope import Headers
from shared.localtime import zoned
from shared.outbox import OutgoingRecord

# A time an operator types without a zone is the municipality's local time.
_AGO = re.compile(r"(\d{1,6})\s*([smhd])")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

_REDRIVE_NAMESPACE = uuid.UUID("0b7e5f8e-3c55-4a8e-9d55-6f1f2a6f4c21")

# The reasons a message may be processed after all once its cause is removed: a consumer
# older than the event (deployed after its producer, or before a new version's support),
# or a fault in the consumer since fixed. These are given while decoding or when the
# handler failed, so the consumer's inbox never took the event's id: the message sent back
# is processed (shared/consumer.py). Every other reason is about the message itself, and
# it would be refused again, for the same reason.
REDRIVABLE = frozenset(
    {
        DeadLetterReason.SCHEMA_VIOLATION,
        DeadLetterReason.UNKNOWN_VERSION,
        DeadLetterReason.HANDLER_ERROR,
    }
)


@dataclass(frozen=True)
class Letter:
    consumer: str
    reason: str
    detail: str
    at: datetime | None
    source_topic: str
    source_partition: int
    source_offset: int
    truncated: bool
    key: bytes
    value: bytes
    headers: Headers  # the original message's, without the dlq_* ones

    @property
    def source(self) -> tuple[str, int, int]:
        return (self.source_topic, self.source_partition, self.source_offset)


def letter_of(key: bytes | None, value: bytes | None, headers: Headers) -> Letter | None:
    """The dead letter in a record of the dead-letter topic; None for a record that is not
    one (no reason or source in its headers)."""
    dlq = {k: v.decode(errors="replace") for k, v in headers if k.startswith("dlq_")}
    try:
        source = (
            dlq["dlq_source_topic"],
            int(dlq["dlq_source_partition"]),
            int(dlq["dlq_source_offset"]),
        )
        reason = dlq[REASON_HEADER]
    except (KeyError, ValueError):
        return None
    return Letter(
        consumer=dlq.get("dlq_consumer", "?"),
        reason=reason,
        detail=dlq.get("dlq_detail", ""),
        at=_when(dlq.get("dlq_at")),
        source_topic=source[0],
        source_partition=source[1],
        source_offset=source[2],
        truncated="dlq_truncated_from_bytes" in dlq,
        key=key or b"",
        value=value or b"",
        headers=[(k, v) for k, v in headers if not k.startswith("dlq_")],
    )


def _when(text: str | None) -> datetime | None:
    """When it was dead-lettered; a time without a zone (not written by us) is taken as
    UTC, so that every time can be compared with every other."""
    try:
        at = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def is_time_ago(text: str) -> bool:
    """Whether a `--since` names a time ago (`90m`), not a moment."""
    return _AGO.fullmatch(text.strip()) is not None


def parse_since(text: str, now: datetime) -> datetime:
    """`--since`: a time ago (`45s`, `90m`, `6h`, `2d`) or a moment (`2026-11-28`,
    `2026-11-28T02:00`, local time unless it names its zone). Raises ValueError, saying
    what it expects."""
    given = text.strip()
    if (ago := _AGO.fullmatch(given)) is not None:
        try:
            return now - timedelta(**{_UNIT[ago[2]]: int(ago[1])})
        except OverflowError:
            raise ValueError(f"{text!r}: further back than the calendar goes") from None
    try:
        at = datetime.fromisoformat(given)
    except ValueError:
        raise ValueError(
            f"{text!r}: expected a time ago (45s, 90m, 6h, 2d) or a moment"
            " (2026-11-28 or 2026-11-28T02:00, local time unless a zone is given)"
        ) from None
    return zoned(at)


def dead_lettered_since(letters: Iterable[Letter], since: datetime | None) -> list[Letter]:
    """The dead letters from `since` on (all of them without it). A letter without a time
    (not written by us) cannot be placed, so a `since` leaves it out."""
    if since is None:
        return list(letters)
    return [letter for letter in letters if letter.at is not None and letter.at >= since]


@dataclass(frozen=True)
class Group:
    """Dead letters of one consumer, reason and source topic."""

    consumer: str
    reason: str
    source_topic: str
    count: int
    first_at: datetime | None
    last_at: datetime | None
    detail: str  # the latest one's: what an operator reads first
    redrivable: bool


def summarise(letters: Iterable[Letter]) -> list[Group]:
    """One line per consumer, reason and source topic; the largest groups first."""
    groups: dict[tuple[str, str, str], list[Letter]] = {}
    for letter in letters:
        groups.setdefault((letter.consumer, letter.reason, letter.source_topic), []).append(letter)
    summary = []
    for (consumer, reason, topic), members in groups.items():
        times = sorted(m.at for m in members if m.at is not None)
        latest = max(members, key=lambda m: (m.at is not None, m.at or datetime.min))
        summary.append(
            Group(
                consumer=consumer,
                reason=reason,
                source_topic=topic,
                count=len(members),
                first_at=times[0] if times else None,
                last_at=times[-1] if times else None,
                detail=latest.detail,
                redrivable=reason in REDRIVABLE,
            )
        )
    return sorted(summary, key=lambda g: (-g.count, g.consumer, g.reason, g.source_topic))


@dataclass(frozen=True)
class Redrive:
    """What a re-drive would send, and what it leaves, with why."""

    records: list[OutgoingRecord]
    left: dict[str, int]  # why -> how many dead letters


def plan_redrive(
    letters: Sequence[Letter],
    *,
    reasons: Iterable[str] | None = None,
    consumers: Iterable[str] | None = None,
    source_topic: str | None = None,
) -> Redrive:
    """The originals of the chosen dead letters, once each: two consumers may have
    dead-lettered the same message, and one copy reaches both; a message sent back before
    and refused again is a second dead letter of the same event (its `ce_id`), sent once.
    Without `reasons`, every reason that may be accepted now; the others are left alone
    with their reason named, not as "not chosen"."""
    wanted_reasons = set(reasons) if reasons is not None else None
    wanted_consumers = set(consumers) if consumers is not None else None
    records: list[OutgoingRecord] = []
    sent: set[tuple[str, int, int]] = set()
    events: set[tuple[str, bytes]] = set()
    left: dict[str, int] = {}

    def leave(why: str) -> None:
        left[why] = left.get(why, 0) + 1

    for letter in letters:
        event = _event_id(letter)
        if (
            (wanted_reasons is not None and letter.reason not in wanted_reasons)
            or (wanted_consumers is not None and letter.consumer not in wanted_consumers)
            or (source_topic is not None and letter.source_topic != source_topic)
        ):
            leave("not chosen")
        elif letter.reason not in REDRIVABLE:
            leave(f"{letter.reason}: about the message itself, it would be refused again")
        elif letter.truncated:
            leave("kept only in part (oversized)")
        elif letter.source in sent or (event is not None and event in events):
            leave("the same message as another dead letter")
        else:
            sent.add(letter.source)
            if event is not None:
                events.add(event)
            records.append(
                OutgoingRecord(
                    event_id=str(uuid.uuid5(_REDRIVE_NAMESPACE, "/".join(map(str, letter.source)))),
                    topic=letter.source_topic,
                    key=letter.key,
                    headers=letter.headers,
                    payload=letter.value,
                )
            )
    return Redrive(records, left)


def _event_id(letter: Letter) -> tuple[str, bytes] | None:
    """The event a dead letter holds, by topic and CloudEvents id, if its headers name one."""
    for key, value in letter.headers:
        if key == "ce_id" and value:
            return (letter.source_topic, value)
    return None
