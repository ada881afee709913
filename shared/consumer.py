"""At-least-once batch consumption with exactly-once effects.

For each batch polled from Kafka: decode every record (poison → dead letter), then in ONE
database transaction record the event ids in the inbox, apply the handler to the events not
seen before, and write dead letters and new events to the outbox. Only after that commit is
the Kafka offset committed. A crash anywhere replays the batch; the inbox makes the replay
change nothing. Transient failures (database down) are retried with backoff, never skipped.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import asyncpg
from pydantic import ValidationError

from shared.db import DbConnection
from shared.deadletter import DeadLetter, DeadLetterReason, SourceRecord, dead_letter_record
from shared.envelope import Envelope, EnvelopeError, parse_headers
from shared.events.base import EventPayload
from shared.inbox import claim_new, inbox_key
from shared.logging import get_logger, log_context, redact_text
from shared.outbox import enqueue
from shared.topics import Topic

if TYPE_CHECKING:
    from shared.metrics import ConsumerMetrics

log = get_logger(__name__)

P = TypeVar("P", bound=EventPayload)
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InsufficientResourcesError,  # too many connections, disk full, out of memory
    asyncpg.OperatorInterventionError,  # admin shutdown, crash shutdown, statement timeout
    asyncpg.TransactionRollbackError,  # serialization failure, deadlock
    asyncpg.LockNotAvailableError,  # lock_timeout
    asyncpg.ReadOnlySQLTransactionError,  # a replica during a failover
)
# Not the messages' fault either, and no outage: the schema or the grants are not what the
# code expects (PostgreSQL's class 42: a missing table or column, a revoked permission, an
# older replica running against a newer migration). Dead-lettering would send every message
# there; instead the batch fails and is consumed again after a growing pause
# (shared/runtime.py), until the cause is put right.
NOT_THE_MESSAGES_FAULT: tuple[type[BaseException], ...] = (asyncpg.SyntaxOrAccessError,)


@dataclass(frozen=True)
class Incoming(Generic[P]):
    envelope: Envelope
    payload: P
    source: SourceRecord

    @property
    def correlation_id(self) -> str:
        return self.envelope.correlation_id


BatchHandler = Callable[[DbConnection, list[Incoming[Any]]], Awaitable[list[DeadLetter]]]
"""Applies fresh events inside the open transaction; returns those it refuses as poison."""
BatchPreparer = Callable[[list[Incoming[Any]]], None]
"""Starts work on a decoded batch that needs no database (claims' signature checks, in a
task), so that it runs while the event loop waits for PostgreSQL: for the previous batch's
commit when read ahead (shared/readahead.py), for this batch's first round trips. It must
not raise, and the handler must not depend on it having run: a retried or split batch
reaches the handler without it."""


# What a handler asked to run once its transaction has committed (`after_commit`).
_COMMITTED: ContextVar[list[Callable[[], None]] | None] = ContextVar("committed", default=None)


def after_commit(action: Callable[[], None]) -> None:
    """Run `action` once the batch's transaction has committed, and not at all if it does
    not: for counting what a handler decided (shared/metrics.py), which a rolled-back and
    retried batch must not count twice. Outside a BatchProcessor's transaction (a test
    calling a handler itself), at once."""
    actions = _COMMITTED.get()
    if actions is None:
        action()
    else:
        actions.append(action)


def decode(
    record: SourceRecord, topics: Mapping[str, Topic], max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
) -> Incoming[Any] | DeadLetter:
    """Turn a raw record into a typed event, or into a dead letter that says why not."""

    def dead(reason: DeadLetterReason, detail: str) -> DeadLetter:
        return DeadLetter(record, reason, detail)

    topic = topics.get(record.topic)
    if topic is None:
        return dead(DeadLetterReason.UNKNOWN_VERSION, f"no schema for topic {record.topic}")
    size = len(record.value or b"")
    if size > max_bytes:
        return dead(DeadLetterReason.OVERSIZED, f"{size} bytes exceeds the limit of {max_bytes}")
    try:
        envelope = parse_headers(record.headers)
    except EnvelopeError as exc:
        return dead(DeadLetterReason.INVALID_ENVELOPE, str(exc))
    if envelope.type != topic.event_type:
        return dead(
            DeadLetterReason.UNKNOWN_VERSION,
            f"event type {envelope.type!r} is not {topic.event_type!r} on {topic.name}",
        )
    try:
        # Parsing and validating in one pass (pydantic's own JSON parser): ~3 µs a record
        # less than the stdlib's json.loads and then validating the dict.
        payload = topic.payload.model_validate_json(record.value or b"")
    except ValidationError:
        # Refused: the stdlib parser decides between "not JSON" and "not the schema" and
        # writes the detail, as it always has (it also reads what pydantic's may not).
        return _refused_body(record, topic, envelope, dead)
    return Incoming(envelope, payload, record)


def _refused_body(
    record: SourceRecord,
    topic: Topic,
    envelope: Envelope,
    dead: Callable[[DeadLetterReason, str], DeadLetter],
) -> Incoming[Any] | DeadLetter:
    try:
        body = json.loads(record.value or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        return dead(DeadLetterReason.MALFORMED_JSON, f"body is not JSON: {exc}"[:300])
    except RecursionError:  # a few hundred `[` are enough, well under any size limit
        return dead(DeadLetterReason.MALFORMED_JSON, "body is not JSON: nested too deeply")
    if not isinstance(body, dict):
        return dead(DeadLetterReason.MALFORMED_JSON, "body is not a JSON object")
    try:
        payload = topic.payload.model_validate(body)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()[:5]
        )
        return dead(DeadLetterReason.SCHEMA_VIOLATION, problems[:300])
    return Incoming(envelope, payload, record)


@dataclass(frozen=True)
class Stall:
    consumer: str
    seconds: float
    error: str  # the last error's type: its detail is in the log


@dataclass
class DecodedBatch:
    records: Sequence[SourceRecord]
    events: list[Incoming[Any]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)


class BatchProcessor:
    def __init__(
        self,
        name: str,
        topics: Sequence[Topic],
        handler: BatchHandler,
        pool: asyncpg.Pool,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        max_backoff_s: float = 5.0,
        prepare: BatchPreparer | None = None,
    ) -> None:
        self.name = name
        self.topics = {t.name: t for t in topics}
        self._handler = handler
        self._prepare = prepare
        self._pool = pool
        self._max_message_bytes = max_message_bytes
        self._max_backoff_s = max_backoff_s
        self.processed = 0
        self.dead_lettered = 0
        # Its series in the process's metrics (ServiceRuntime.consume sets them).
        self.metrics: ConsumerMetrics | None = None
        # Since when (monotonic clock) and why no batch got through: a database that stays
        # away, a lock never given up, a batch that fails for another reason. Readiness
        # shows it (`stall`), so that `vtp status` can name the consumer behind a lag.
        self._stalled_since: float | None = None
        self._stall_error = ""

    async def process(self, records: Sequence[SourceRecord]) -> None:
        await self.apply_batch(self.decode_batch(records))

    def decode_batch(self, records: Sequence[SourceRecord]) -> DecodedBatch:
        """Decode (poison becomes a dead letter) and hand the events to `prepare`: all
        that can be done before the batch's transaction, and never raises."""
        batch = DecodedBatch(records)
        for record in records:
            try:
                decoded: Incoming[Any] | DeadLetter = decode(
                    record, self.topics, self._max_message_bytes
                )
            except Exception as exc:
                # A record our decoding cannot take must not fail its whole batch (which
                # would be consumed again, and fail again, for ever): it is poison too.
                decoded = DeadLetter(
                    record,
                    DeadLetterReason.HANDLER_ERROR,
                    f"decoding failed: {failure_detail(exc)}"[:300],
                )
            if isinstance(decoded, DeadLetter):
                batch.dead.append(decoded)
            else:
                batch.events.append(decoded)
        for letter in batch.dead:
            _log_dead_letter(letter, self.name)
        if batch.events and self._prepare is not None:
            self._prepare(batch.events)
        return batch

    def failed(self, exc: BaseException) -> None:
        """A batch could not be applied (it is consumed again): the consumer is stalled."""
        if self._stalled_since is None:
            self._stalled_since = time.monotonic()
        self._stall_error = type(exc).__name__

    def stall(self) -> Stall | None:
        """How long no batch has got through, and the last error; None if all is well."""
        if self._stalled_since is None:
            return None
        return Stall(self.name, time.monotonic() - self._stalled_since, self._stall_error)

    async def apply_batch(self, batch: DecodedBatch) -> None:
        events, dead = batch.events, batch.dead
        started = time.perf_counter()
        try:
            await self._with_retry(lambda: self._apply(events, dead))
        except _HandlerFailed:
            # A bug or data the handler cannot take: isolate the culprit(s), one at a time,
            # so that one bad message never holds back the others.
            if self.metrics is not None:
                self.metrics.split()
            for letter in dead:
                await self._with_retry(lambda letter=letter: self._apply([], [letter]))  # type: ignore[misc]
            for event in events:
                await self._apply_alone(event)
        self._stalled_since = None
        if self.metrics is not None:
            self.metrics.batch_applied(len(batch.records), time.perf_counter() - started)

    async def _apply_alone(self, event: Incoming[Any]) -> None:
        try:
            await self._with_retry(lambda: self._apply([event], []))
        except _HandlerFailed as failure:
            letter = DeadLetter(event.source, DeadLetterReason.HANDLER_ERROR, failure.detail)
            _log_dead_letter(letter, self.name)
            await self._with_retry(lambda: self._apply([], [letter]))

    async def _apply(self, events: list[Incoming[Any]], dead: list[DeadLetter]) -> None:
        committed: list[Callable[[], None]] = []
        token = _COMMITTED.set(committed)
        try:
            await self._transaction(events, dead)
        finally:
            _COMMITTED.reset(token)
        for action in committed:
            action()

    async def _transaction(self, events: list[Incoming[Any]], dead: list[DeadLetter]) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            keys = [inbox_key(e.envelope.id, e.source.value or b"") for e in events]
            fresh_keys = await claim_new(conn, self.name, keys)
            fresh = []
            for event, key in zip(events, keys, strict=True):
                # Also drops the second copy of an event delivered twice within one batch.
                if key in fresh_keys:
                    fresh_keys.discard(key)
                    fresh.append(event)
            refused: list[DeadLetter] = []
            if fresh:
                try:
                    refused = await self._handler(conn, fresh)
                except (*TRANSIENT_ERRORS, *NOT_THE_MESSAGES_FAULT):
                    raise
                except Exception as exc:
                    raise _HandlerFailed(failure_detail(exc)) from exc
            for letter in refused:
                _log_dead_letter(letter, self.name)
            letters = dead + refused
            if letters:
                await enqueue(conn, [dead_letter_record(d, self.name) for d in letters])
        self.processed += len(fresh)
        self.dead_lettered += len(letters)
        if self.metrics is not None:
            self.metrics.applied(len(events) - len(fresh), letters)
        if len(fresh) < len(events):
            log.info("duplicates ignored", consumer=self.name, duplicates=len(events) - len(fresh))

    async def _with_retry(self, attempt: Callable[[], Awaitable[None]]) -> None:
        backoff = 0.05
        while True:
            try:
                await attempt()
                return
            except TRANSIENT_ERRORS as exc:
                self.failed(exc)
                if self.metrics is not None:
                    self.metrics.retried()
                log.warning(
                    "transient failure, retrying batch",
                    consumer=self.name,
                    error=type(exc).__name__,
                    detail=str(exc)[:200],
                    backoff_s=round(backoff, 2),
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)


def failure_detail(exc: BaseException) -> str:
    """What a dead letter (its `dlq_detail`, kept on the topic) and its log line say of an
    exception, without the values it quotes: PostgreSQL's DETAIL of a refused row is the
    whole row ("Failing row contains (…)": a name, an address), a pydantic error quotes
    its input. The primary message names the constraint or the field."""
    if isinstance(exc, asyncpg.PostgresError):
        text = str(exc.args[0]) if exc.args else ""
    elif isinstance(exc, ValidationError):
        text = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)[:5]
        )
    else:
        text = str(exc)
    return redact_text(f"{type(exc).__name__}: {text}")[:300]


class _HandlerFailed(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _log_dead_letter(letter: DeadLetter, consumer: str) -> None:
    correlation_id = _header(letter.source.headers, "correlation_id")
    with log_context(correlation_id=correlation_id) if correlation_id else nullcontext():
        log.warning(
            "message dead-lettered",
            consumer=consumer,
            reason=letter.reason.value,
            detail=letter.detail,
            topic=letter.source.topic,
            partition=letter.source.partition,
            offset=letter.source.offset,
        )


def _header(headers: Sequence[tuple[str, bytes]], name: str) -> str | None:
    for key, value in headers:
        if key == name and value is not None:
            try:
                return value.decode()
            except UnicodeDecodeError:
                return None
    return None
