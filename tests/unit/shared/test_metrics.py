"""The metrics a process serves at GET /metrics: a consumer's batch counted once per batch
and only once its transaction committed, dead letters by reason, the route's format and
access, and no personal data in what it shows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg
import httpx
from fastapi import FastAPI
from pydantic import SecretStr

from shared.consumer import BatchProcessor, Incoming, after_commit
from shared.deadletter import DeadLetter, SourceRecord
from shared.envelope import new_envelope
from shared.events.base import EventPayload
from shared.http import metrics_router
from shared.metrics import ServiceMetrics
from shared.topics import Topic

TOKEN = "m" * 40
CARD_NUMBER = "6280123400001234"
RECIPIENT = "an.holder@example.be"


class Visit(EventPayload):
    card_number: str
    recipient: str


VISITS = Topic("test.visits.v1", "be.test.Visit", Visit, lambda p: p.card_number)


class FakeConnection:
    """What BatchProcessor asks of a connection: the inbox claim and the outbox insert."""

    def __init__(self, pool: FakePool) -> None:
        self._pool = pool
        self._claimed: set[uuid.UUID] = set()  # the inbox rows of the open transaction

    async def fetch(self, _sql: str, *args: Any) -> list[dict[str, Any]]:
        if "FROM outbox" in _sql:
            return []
        _consumer, keys = args
        fresh = [k for k in keys if k not in self._pool.seen]
        self._claimed.update(fresh)
        return [{"event_id": k} for k in fresh]

    async def fetchrow(self, _sql: str) -> dict[str, Any]:
        return {"pending": 7, "parked": 1, "oldest_s": 12.5}

    async def execute(self, _sql: str, *_args: Any) -> str:
        self._pool.executed += 1
        return "INSERT 0 1"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield
        if self._pool.commits_failing:
            self._pool.commits_failing -= 1
            raise ConnectionResetError("the database went away at commit")
        self._pool.seen |= self._claimed


class FakePool:
    def __init__(self) -> None:
        self.seen: set[uuid.UUID] = set()
        self.executed = 0
        self.commits_failing = 0

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[FakeConnection]:
        yield FakeConnection(self)


def _record(offset: int, value: bytes | None = None) -> SourceRecord:
    envelope = new_envelope(type=VISITS.event_type, source="/test")
    body = Visit(card_number=CARD_NUMBER, recipient=RECIPIENT).model_dump_json().encode()
    return SourceRecord(
        VISITS.name, 0, offset, CARD_NUMBER.encode(), value or body, envelope.headers()
    )


def _sample(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _processor(
    metrics: ServiceMetrics, pool: FakePool, counted: list[int] | None = None
) -> BatchProcessor:
    async def handler(_conn: Any, batch: list[Incoming[Any]]) -> list[DeadLetter]:
        if counted is not None:
            after_commit(lambda: counted.append(len(batch)))
        return []

    processor = BatchProcessor("test.visits", [VISITS], handler, cast(asyncpg.Pool, pool))
    processor.metrics = metrics.consumer(processor.name)
    return processor


async def test_a_batch_with_one_dead_letter_is_counted_once_per_batch() -> None:
    metrics, pool = ServiceMetrics(), FakePool()
    processor = _processor(metrics, pool)
    batch = [_record(0), _record(1, b'{"card_number": '), _record(2)]

    await processor.process(batch)

    consumer = {"consumer": "test.visits"}
    assert _sample(metrics, "vtp_consumer_records_total", **consumer) == 3
    assert _sample(metrics, "vtp_consumer_batches_total", **consumer) == 1
    assert (
        _sample(metrics, "vtp_consumer_dead_letters_total", **consumer, reason="malformed_json")
        == 1
    )
    # One observation per batch, not per record.
    assert _sample(metrics, "vtp_consumer_batch_duration_seconds_count", **consumer) == 1
    assert _sample(metrics, "vtp_consumer_duplicates_total", **consumer) == 0

    await processor.process(batch)  # delivered again: the inbox drops the two events

    assert _sample(metrics, "vtp_consumer_records_total", **consumer) == 6
    assert _sample(metrics, "vtp_consumer_batches_total", **consumer) == 2
    assert _sample(metrics, "vtp_consumer_duplicates_total", **consumer) == 2
    assert _sample(metrics, "vtp_consumer_batch_duration_seconds_count", **consumer) == 2


async def test_what_a_handler_counts_is_counted_only_once_its_transaction_committed() -> None:
    metrics, pool = ServiceMetrics(), FakePool()
    counted: list[int] = []
    processor = _processor(metrics, pool, counted)
    pool.commits_failing = 1  # the first commit fails: the batch is retried

    await processor.process([_record(0), _record(1)])

    assert counted == [2]  # the rolled-back attempt counted nothing
    consumer = {"consumer": "test.visits"}
    assert _sample(metrics, "vtp_consumer_retries_total", **consumer) == 1
    assert _sample(metrics, "vtp_consumer_batches_total", **consumer) == 1
    assert _sample(metrics, "vtp_consumer_batch_duration_seconds_count", **consumer) == 1


def test_two_processes_worth_of_metrics_do_not_share_a_registry() -> None:
    first, second = ServiceMetrics(), ServiceMetrics()
    first.consumer("claims.checkins").batch_applied(10, 0.01)
    second.consumer("claims.checkins").batch_applied(3, 0.01)
    assert _sample(first, "vtp_consumer_records_total", consumer="claims.checkins") == 10
    assert _sample(second, "vtp_consumer_records_total", consumer="claims.checkins") == 3


def _app(metrics: ServiceMetrics, token: SecretStr | None = None) -> FastAPI:
    app = FastAPI()
    app.include_router(metrics_router(metrics, lambda: cast(asyncpg.Pool, FakePool()), token))
    return app


def _client(app: FastAPI, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t", headers=headers
    )


async def test_the_route_serves_the_text_format_with_every_family_and_no_personal_data() -> None:
    metrics = ServiceMetrics()
    processor = _processor(metrics, FakePool())
    metrics.watch_stalls(lambda: {"test.visits": 0.0})
    outcomes, deliveries = metrics.checkin_outcomes(), metrics.deliveries()
    await processor.process([_record(0), _record(1, b"not json")])
    outcomes.count({("approved", None): 3, ("rejected", "budget_exhausted"): 1}, 1500, 1, 0)
    deliveries.count([("email", "sent"), ("email", "sent"), ("webhook", "retry")])
    metrics.relay.passed(4)

    async with _client(_app(metrics)) as http:
        response = await http.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    for family in (
        "vtp_consumer_records_total",
        "vtp_consumer_batches_total",
        "vtp_consumer_batch_duration_seconds_bucket",
        "vtp_consumer_dead_letters_total",
        "vtp_consumer_stalled_seconds",
        "vtp_outbox_published_total",
        "vtp_outbox_relay_passes_total",
        "vtp_outbox_pending_rows",
        "vtp_checkin_outcomes_total",
        "vtp_checkin_approved_cents_total",
        "vtp_notification_deliveries_total",
        "process_resident_memory_bytes",
    ):
        assert f"\n{family}" in text, family
    assert "vtp_outbox_pending_rows 7.0" in text  # read at scrape time
    assert 'vtp_checkin_outcomes_total{outcome="rejected",reason="budget_exhausted"} 1.0' in text
    assert 'vtp_notification_deliveries_total{channel="email",status="sent"} 2.0' in text
    # Counts only: no card number, recipient or id, and labels from bounded sets.
    for secret in (CARD_NUMBER, RECIPIENT, "@", "_created"):
        assert secret not in text
    label_names = {
        pair.split("=")[0]
        for line in text.splitlines()
        if "{" in line and not line.startswith("#")
        for pair in line[line.index("{") + 1 : line.index("}")].split(",")
    }
    assert label_names <= {
        "consumer",
        "reason",
        "outcome",
        "waiting_for",
        "channel",
        "status",
        "le",
    }


async def test_a_scrape_without_the_database_still_answers_without_the_backlog() -> None:
    metrics = ServiceMetrics()

    def no_pool() -> asyncpg.Pool:
        raise RuntimeError("the database pool is not open yet")

    app = FastAPI()
    app.include_router(metrics_router(metrics, no_pool))
    async with _client(app) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200
    assert "vtp_outbox_pending_rows" not in response.text
    assert "vtp_outbox_relay_passes_total" in response.text


async def test_with_the_operations_token_the_route_needs_it() -> None:
    app = _app(ServiceMetrics(), SecretStr(TOKEN))
    async with _client(app) as http:
        assert (await http.get("/metrics")).status_code == 401
        response = await http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert "vtp_outbox_published_total" in response.text
