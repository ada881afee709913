"""One service process: a database pool, Kafka consumers, the outbox relay and an HTTP API,
all in one event loop, started in order and stopped gracefully on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, cast

import asyncpg
import uvicorn
from fastapi import FastAPI
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy

from shared.consumer import BatchProcessor, Stall, failure_detail
from shared.db import create_pool, migrate_service
from shared.deadletter import SourceRecord
from shared.eventloop import loop_name
from shared.faults import CrashAfterCommit
from shared.kafka import MAX_RECORD_BYTES, KafkaSender, ensure_topics, make_broker, make_producer
from shared.logging import configure_logging, get_logger
from shared.metrics import ServiceMetrics
from shared.offsets import CommittingConsumer, OffsetCommitter
from shared.readahead import ReadAheadConsumer, consume_ahead, source_record
from shared.relay import OutboxRelay
from shared.settings import ServiceSettings

log = get_logger(__name__)

# The collector runs when the container objects alive since its last run outnumber this.
# A batch of 1,000 records in flight (decoded, judged, written) holds tens of thousands;
# at CPython's 700 (or our earlier 5,000) the collector ran several times per batch, found
# almost nothing to free (the batch was still alive, and its objects are freed by
# reference counting when it is done, not by the collector) and moved it all to an older
# generation to scan again: 1.2 s of the claims service's ~12 s of CPU in a run of 40,000
# check-ins (0.2 s at this setting). Above a batch's worth, it runs only when objects
# really accumulate.
YOUNG_GENERATION_OBJECTS = 100_000

# The embedded broker answers a fetch when its wait is over, not when data arrives (a
# message waits half the fetch wait on average), and an empty fetch costs it ~0.5 ms of
# CPU (more with many partitions). Measured with the whole stack idle: every consumer at
# 25 ms kept the broker at 46 % of a core and the services at 17 %; the check-in consumer
# at 10 ms and the others at 250 ms, 10 % and 11 %. Events that nobody waits for
# (card projections, settlements, usage, notifications) can wait a quarter second.
HOT_FETCH_WAIT_MS = 10
BACKGROUND_FETCH_WAIT_MS = 250
# The longest pause before a failed batch is consumed again.
BATCH_FAILURE_BACKOFF_MAX_S = 5.0


def batch_failure_backoff_s(failures_in_a_row: int) -> float:
    """0.2 s after a first failure, doubling, at most BATCH_FAILURE_BACKOFF_MAX_S."""
    return min(0.1 * 2.0 ** min(failures_in_a_row, 10), BATCH_FAILURE_BACKOFF_MAX_S)


BackgroundTask = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


async def _keep_raw(_message: Any) -> None:
    return None


def source_records(message: KafkaMessage) -> list[SourceRecord]:
    raw = message.raw_message
    return [source_record(r) for r in (raw if isinstance(raw, tuple) else (raw,))]


def report_task_failure(task: asyncio.Task[Any]) -> None:
    """A background task (the outbox relay, the offset commits, a service's own) that ends
    with an error does its work no more: said at once, not only at shutdown, if ever."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error(
            "background task failed",
            task=task.get_name(),
            error=type(exc).__name__,
            detail=failure_detail(exc),
            exc_info=exc,
        )


class ServiceRuntime:
    def __init__(
        self,
        *,
        name: str,
        bootstrap_servers: str,
        database_url: str,
        migrations: Path,
        http_host: str = "127.0.0.1",
        http_port: int = 0,
        pool_size: int = 5,
        max_record_bytes: int = MAX_RECORD_BYTES,
        topic_replication_factor: int = 1,
    ) -> None:
        self.name = name
        self.topic_replication_factor = topic_replication_factor
        self.max_record_bytes = max_record_bytes
        self.bootstrap_servers = bootstrap_servers
        self.database_url = database_url
        self.migrations = migrations
        self.http_host = http_host
        self.http_port = http_port
        self.pool_size = pool_size
        self.broker = make_broker(bootstrap_servers, client_id=name)
        self.stop = asyncio.Event()
        self._pool: asyncpg.Pool | None = None
        self._processors: list[tuple[BatchProcessor, str, int, int]] = []
        self.relay: OutboxRelay | None = None
        self._crash_fault = CrashAfterCommit()
        self.offsets = OffsetCommitter()
        # This process's metrics (GET /metrics: shared/http.metrics_router).
        self.metrics = ServiceMetrics()
        self.metrics.watch_stalls(self.stalled_seconds)

    @classmethod
    def for_service(cls, name: str, settings: ServiceSettings, migrations: Path) -> ServiceRuntime:
        """The runtime of a service process, configured from its settings (logging included)."""
        configure_logging(name, settings.log_level)
        return cls(
            name=name,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            database_url=settings.database_url,
            migrations=migrations,
            http_host=settings.http_host,
            http_port=settings.http_port,
            max_record_bytes=settings.kafka_max_record_bytes,
            topic_replication_factor=settings.kafka_topic_replication_factor,
        )

    def stalls(self) -> list[Stall]:
        """This process's consumers that have not got a batch through lately, and why."""
        return [stall for p, *_ in self._processors if (stall := p.stall()) is not None]

    def stalled_seconds(self) -> dict[str, float]:
        """Each consumer's seconds without a batch through; 0 when it is not stalled."""
        return {
            p.name: stall.seconds if (stall := p.stall()) is not None else 0.0
            for p, *_ in self._processors
        }

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the database pool is not open yet")
        return self._pool

    def consume(
        self,
        processor: BatchProcessor,
        *,
        group_id: str,
        max_records: int = 500,
        fetch_wait_ms: int = BACKGROUND_FETCH_WAIT_MS,
    ) -> None:
        """Subscribe a batch processor. Offsets are committed only after its transaction.
        `fetch_wait_ms`: how long the broker may hold an empty fetch — the latency of a
        quiet topic's first new message; pass HOT_FETCH_WAIT_MS for the check-in path."""
        processor.metrics = self.metrics.consumer(processor.name)
        self._processors.append((processor, group_id, max_records, fetch_wait_ms))

    def _register(
        self, processor: BatchProcessor, group_id: str, max_records: int, fetch_wait_ms: int
    ) -> None:
        subscriber = self.broker.subscriber(
            *processor.topics,
            group_id=group_id,
            batch=True,
            max_records=max_records,
            # FastStream sleeps a whole batch timeout after an empty poll: keep it short.
            batch_timeout_ms=5,
            fetch_max_wait_ms=fetch_wait_ms,
            # What a consumer may buffer ahead, per partition (aiokafka's default is 1 MiB:
            # with 144 partitions behind one subscriber that is memory nobody asked for).
            # A batch of 2000 check-ins is ~1.4 MB over 8 partitions.
            max_partition_fetch_bytes=256 * 1024,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.MANUAL,  # never ACK_FIRST: that is at-most-once
            max_poll_interval_ms=300_000,
            # The embedded broker holds a group join for about half the session timeout;
            # 6 s (Kafka's minimum) keeps start-up and rebalances short.
            session_timeout_ms=6_000,
            heartbeat_interval_ms=1_500,
            decoder=_keep_raw,  # decoding is ours: a malformed body must become a dead letter
        )

        def applied(consumer: CommittingConsumer, records: Sequence[SourceRecord]) -> None:
            self._crash_fault.after_database_commit()
            # The offsets, after the database commit, in the background (shared/offsets.py).
            self.offsets.processed(consumer, records)

        failures_in_a_row = 0

        async def on_batch(_body: Any, message: KafkaMessage) -> None:
            # Rewinds the consumer itself if a batch fails, so that it is consumed again.
            nonlocal failures_in_a_row
            consumer = cast(ReadAheadConsumer, message.consumer)  # aiokafka's own
            try:
                await consume_ahead(
                    processor,
                    consumer,
                    source_records(message),
                    max_records=max_records,
                    applied=lambda records: applied(consumer, records),
                )
            except Exception as exc:
                # FastStream swallows it (and has no logger of ours): said here, or never.
                processor.failed(exc)
                if processor.metrics is not None:
                    processor.metrics.failed()
                failures_in_a_row += 1
                backoff = batch_failure_backoff_s(failures_in_a_row)
                log.exception(
                    "batch failed, it is consumed again",
                    consumer=processor.name,
                    failures_in_a_row=failures_in_a_row,
                    backoff_s=backoff,
                )
                # FastStream fetches again at once: without a pause, a failure that is not
                # the messages' fault (a missing table, a permission) would spin a core.
                await asyncio.sleep(backoff)
                raise
            failures_in_a_row = 0

        subscriber(on_batch)

    async def _serve(self, server: uvicorn.Server) -> None:
        # uvicorn takes over SIGTERM/SIGINT while it serves; when it exits, so do we.
        await server.serve()
        self.stop.set()

    async def open_database(self) -> asyncpg.Pool:
        backoff = 0.2
        while True:
            try:
                self._pool = await create_pool(self.database_url, max_size=self.pool_size)
                break
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning(
                    "database not reachable yet", error=type(exc).__name__, backoff_s=backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5)
        await migrate_service(self._pool, self.migrations)
        return self._pool

    async def run(
        self,
        app: FastAPI | None = None,
        background: Sequence[BackgroundTask] = (),
    ) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)
        if self._pool is None:
            await self.open_database()
        await ensure_topics(
            self.bootstrap_servers, replication_factor=self.topic_replication_factor
        )
        producer = make_producer(self.bootstrap_servers, client_id=f"{self.name}-relay")
        await producer.start()
        self.relay = OutboxRelay(
            self.pool, KafkaSender(producer, self.max_record_bytes), metrics=self.metrics.relay
        )
        for processor, group_id, max_records, fetch_wait_ms in self._processors:
            self._register(processor, group_id, max_records, fetch_wait_ms)
        await self.broker.start()
        tasks = [
            asyncio.create_task(self.relay.run(self.stop), name="outbox-relay"),
            asyncio.create_task(self.offsets.run(self.stop), name="offset-commits"),
        ]
        tasks += [asyncio.create_task(task(self.stop)) for task in background]
        server: uvicorn.Server | None = None
        if app is not None:
            server = uvicorn.Server(
                uvicorn.Config(
                    app,
                    host=self.http_host,
                    port=self.http_port,
                    log_config=None,
                    access_log=False,
                    lifespan="off",
                )
            )
            tasks.append(asyncio.create_task(self._serve(server), name="http"))
        for task in tasks:
            task.add_done_callback(report_task_failure)
        # Start-up objects (modules, models, pools) live as long as the process: frozen,
        # the collector stops re-scanning them.
        gc.collect()
        gc.freeze()
        gc.set_threshold(YOUNG_GENERATION_OBJECTS, 20, 20)
        log.info("service started", http_port=self.http_port, event_loop=loop_name())
        await self.stop.wait()
        log.info("service stopping")
        if server is not None:
            server.should_exit = True
        await self.offsets.flush()  # what is processed need not be redelivered
        await self.broker.stop()
        for task in tasks:
            # (A task that failed was reported when it did: it does not stop the shutdown.)
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
        await producer.stop()
        await self.pool.close()
        log.info("service stopped")
