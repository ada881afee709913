"""Prometheus metrics of one service process, served at `GET /metrics` (shared/http.py).

What an operator graphs and alerts on: per consumer the records, batches, batch duration,
dead letters by reason, retries and failures, and how long it has been stalled; the
outbox relay's publishing and backlog; claims' check-in outcomes and the cents approved;
notifications' deliveries by channel and status. Labels are bounded sets of names and
reason codes — never an id, a card number or a recipient.

Each process has its own registry (not prometheus_client's global one), so that tests
can build several apps in one process. Counting costs a few increments per batch, never
per record: a consumer counts a batch's records with one `inc(n)`, and the helpers take
tallies a handler made in C (`collections.Counter`) rather than being called per record.
Everything runs on the event loop's one thread: the locks prometheus_client takes are
never contended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from shared.deadletter import DeadLetter

# The text format generate_latest writes, as every Prometheus version reads it.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# No `_created` series beside every counter and histogram (a start time per series: twice
# the lines a scrape carries, and nothing an alert uses). prometheus_client's setting is
# per process; no other registry in our processes wants them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # (unannotated upstream)
# A batch's transaction: ~5-50 ms for a thousand check-ins on a healthy database; seconds
# mean lock waits, retries or a database in trouble.
BATCH_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ConsumerMetrics:
    """One BatchProcessor's series, bound to its name once (a `labels()` call per batch
    would cost a lock and a lookup each time)."""

    __slots__ = (
        "_batch_seconds",
        "_batches",
        "_dead_letters",
        "_duplicates",
        "_failures",
        "_name",
        "_records",
        "_retries",
        "_splits",
    )

    def __init__(self, families: _ConsumerFamilies, name: str) -> None:
        self._name = name
        self._records = families.records.labels(name)
        self._batches = families.batches.labels(name)
        self._batch_seconds = families.batch_seconds.labels(name)
        self._duplicates = families.duplicates.labels(name)
        self._retries = families.retries.labels(name)
        self._failures = families.failures.labels(name)
        self._splits = families.splits.labels(name)
        self._dead_letters = families.dead_letters

    def batch_applied(self, records: int, seconds: float) -> None:
        self._records.inc(records)
        self._batches.inc()
        self._batch_seconds.observe(seconds)

    def applied(self, duplicates: int, letters: Sequence[DeadLetter]) -> None:
        """After a transaction's commit: the duplicates it dropped, the letters it wrote."""
        if duplicates:
            self._duplicates.inc(duplicates)
        if letters:
            by_reason: dict[str, int] = {}
            for letter in letters:  # few, as a rule none: poison is rare
                by_reason[letter.reason.value] = by_reason.get(letter.reason.value, 0) + 1
            for reason, n in by_reason.items():
                self._dead_letters.labels(self._name, reason).inc(n)

    def retried(self) -> None:
        """A transient failure (the database away, a lock timeout): the batch is retried."""
        self._retries.inc()

    def failed(self) -> None:
        """A batch failed for a reason not its messages': it is consumed again."""
        self._failures.inc()

    def split(self) -> None:
        """The handler failed on a batch: its events are applied one at a time."""
        self._splits.inc()


@dataclass(frozen=True)
class _ConsumerFamilies:
    records: Counter
    batches: Counter
    batch_seconds: Histogram
    duplicates: Counter
    dead_letters: Counter
    retries: Counter
    failures: Counter
    splits: Counter


class RelayMetrics:
    """The outbox relay's publishing, counted once per pass."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._published = Counter(
            "vtp_outbox_published",
            "Events the outbox relay published to the broker.",
            registry=registry,
        )
        self._passes = Counter(
            "vtp_outbox_relay_passes",
            "Passes of the outbox relay (each reads up to a batch of unpublished rows).",
            registry=registry,
        )
        self._failures = Counter(
            "vtp_outbox_relay_failures",
            "Passes that failed (database or broker away) and are retried after a pause.",
            registry=registry,
        )
        self._parked = Counter(
            "vtp_outbox_records_parked",
            "Outbox records the broker will never take, parked (see outbox_parked in"
            " /health/ready).",
            registry=registry,
        )

    def passed(self, published: int) -> None:
        self._passes.inc()
        if published:
            self._published.inc(published)

    def failed(self) -> None:
        self._failures.inc()

    def parked(self, records: int) -> None:
        self._parked.inc(records)


@dataclass(frozen=True)
class OutboxFigures:
    pending: int
    parked: int
    oldest_pending_s: float | None


class OutboxBacklog(Collector):
    """What waits in the outbox, as read at the last scrape (the readiness query, run by
    the /metrics route, not by the relay: no database round trip on the hot path). Absent
    from a scrape that could not read it: a stale backlog would look like a real one."""

    def __init__(self) -> None:
        self.figures: OutboxFigures | None = None

    def collect(self) -> Iterator[Metric]:
        figures = self.figures
        if figures is None:
            return
        yield GaugeMetricFamily(
            "vtp_outbox_pending_rows",
            "Outbox rows not published yet (not parked): grows while the broker is away.",
            value=figures.pending,
        )
        yield GaugeMetricFamily(
            "vtp_outbox_parked_rows",
            "Outbox rows parked because the broker refused them for good.",
            value=figures.parked,
        )
        yield GaugeMetricFamily(
            "vtp_outbox_oldest_pending_seconds",
            "Age of the oldest unpublished outbox row; 0 when none waits.",
            value=figures.oldest_pending_s or 0.0,
        )


class ConsumerStalls(Collector):
    """How long each consumer has got no batch through (0: all is well), read from the
    processors when scraped."""

    def __init__(self, stalled: Callable[[], Mapping[str, float]]) -> None:
        self._stalled = stalled

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "vtp_consumer_stalled_seconds",
            "Seconds since the consumer last got a batch through while it has one to apply"
            " (0 when it is not stalled).",
            labels=["consumer"],
        )
        for consumer, seconds in sorted(self._stalled().items()):
            family.add_metric([consumer], seconds)
        yield family


class CheckInOutcomes:
    """Claims: how check-ins were decided, counted once per batch after its commit."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._outcomes = Counter(
            "vtp_checkin_outcomes",
            "Check-ins decided, by outcome (approved, capped, rejected, not_authenticated)"
            " and reason (a rejection or authentication reason code; empty when approved).",
            ["outcome", "reason"],
            registry=registry,
        )
        self._approved_cents = Counter(
            "vtp_checkin_approved_cents",
            "Cents approved (approved and capped claims), at decision: a later reversal"
            " is not taken off (GET /stats has the claims that stand).",
            registry=registry,
        )
        self._parked = Counter(
            "vtp_checkins_parked",
            "Check-ins parked, by what they wait for (device: its registration or key;"
            " card). Judged later, and then counted in vtp_checkin_outcomes_total.",
            ["waiting_for"],
            registry=registry,
        )
        self._children: dict[tuple[str, str | None], Counter] = {}
        self._parked_children = {w: self._parked.labels(w) for w in ("device", "card")}

    def count(
        self,
        outcomes: Mapping[tuple[str, str | None], int],
        approved_cents: int,
        parked_for_device: int = 0,
        parked_for_card: int = 0,
    ) -> None:
        """`outcomes`: how many check-ins per (outcome, reason), e.g. a Counter."""
        for key, n in outcomes.items():
            if not n:
                continue
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self._outcomes.labels(key[0], key[1] or "")
            child.inc(n)
        if approved_cents:
            self._approved_cents.inc(approved_cents)
        if parked_for_device:
            self._parked_children["device"].inc(parked_for_device)
        if parked_for_card:
            self._parked_children["card"].inc(parked_for_card)


class Deliveries:
    """Notifications: what each delivery attempt came to, counted once per pass."""

    STATUSES = ("sent", "retry", "dead")

    def __init__(self, registry: CollectorRegistry) -> None:
        self._deliveries = Counter(
            "vtp_notification_deliveries",
            "Delivery attempts by channel (email, webhook, …) and what they came to: sent,"
            " retry (tried again later) or dead (given up).",
            ["channel", "status"],
            registry=registry,
        )

    def count(self, attempts: Iterable[tuple[str, str]]) -> None:
        """`attempts`: (channel, status) per delivery of a pass."""
        tally: dict[tuple[str, str], int] = {}
        for key in attempts:
            tally[key] = tally.get(key, 0) + 1
        for (channel, status), n in tally.items():
            self._deliveries.labels(channel, status).inc(n)


class ServiceMetrics:
    """A service process's registry with the families every service has (consumers, the
    outbox relay, the process itself); a service adds its own (`checkin_outcomes`,
    `deliveries`)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._consumers = _ConsumerFamilies(
            records=Counter(
                "vtp_consumer_records",
                "Records in the batches a consumer applied (events, duplicates and poison).",
                ["consumer"],
                registry=r,
            ),
            batches=Counter(
                "vtp_consumer_batches",
                "Batches a consumer applied (each one database transaction, as a rule).",
                ["consumer"],
                registry=r,
            ),
            batch_seconds=Histogram(
                "vtp_consumer_batch_duration_seconds",
                "How long applying a batch took: its transaction, retries included.",
                ["consumer"],
                buckets=BATCH_SECONDS_BUCKETS,
                registry=r,
            ),
            duplicates=Counter(
                "vtp_consumer_duplicates",
                "Records a consumer had processed before (its inbox dropped them).",
                ["consumer"],
                registry=r,
            ),
            dead_letters=Counter(
                "vtp_consumer_dead_letters",
                "Messages a consumer dead-lettered (ops.dead-letter.v1), by reason.",
                ["consumer", "reason"],
                registry=r,
            ),
            retries=Counter(
                "vtp_consumer_retries",
                "Transient failures (database away, lock timeout); the batch was retried.",
                ["consumer"],
                registry=r,
            ),
            failures=Counter(
                "vtp_consumer_batch_failures",
                "Batches that failed for a reason not their messages' and are consumed again.",
                ["consumer"],
                registry=r,
            ),
            splits=Counter(
                "vtp_consumer_batch_splits",
                "Batches the handler failed on, applied again one event at a time.",
                ["consumer"],
                registry=r,
            ),
        )
        self.relay = RelayMetrics(r)
        self.outbox = OutboxBacklog()
        r.register(self.outbox)
        ProcessCollector(registry=r)  # CPU seconds, resident memory, open files

    def consumer(self, name: str) -> ConsumerMetrics:
        return ConsumerMetrics(self._consumers, name)

    def watch_stalls(self, stalled: Callable[[], Mapping[str, float]]) -> None:
        self.registry.register(ConsumerStalls(stalled))

    def checkin_outcomes(self) -> CheckInOutcomes:
        return CheckInOutcomes(self.registry)

    def deliveries(self) -> Deliveries:
        return Deliveries(self.registry)

    def exposition(self) -> bytes:
        """The text exposition format, as Prometheus scrapes it."""
        return generate_latest(self.registry)
