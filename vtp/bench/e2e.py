"""End-to-end measurements on a running stack: sustained throughput, latency at a steady
rate, and the memory of the service processes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import psutil
from aiokafka import AIOKafkaConsumer

from shared import topics
from shared.kafka import KafkaSender, make_producer
from shared.outbox import OutgoingRecord
from vtp.demo.seed import Seeded

Prepared = tuple[str, bytes, bytes, list[tuple[str, bytes]]]  # checkin id, key, body, headers


def prepare_checkins(seeded: Seeded, count: int, rng: random.Random) -> list[Prepared]:
    """Signed and serialised before the clock starts: the device's own work is not ours.
    The result is frozen for the garbage collector: 50,000 check-ins' tuples and header
    lists, scanned again by every full collection of this process, took CPU from the
    machine's services (this process's CPU per check-in until decided: 0.033 → 0.025 ms
    in the harness)."""
    out: list[Prepared] = []
    now = datetime.now(UTC)
    for _ in range(count):
        device = rng.choice(seeded.devices)
        activity, price = rng.choice(device.activities)
        envelope, checkin = device.identity.check_in(
            card_number=rng.choice(seeded.card_numbers),
            activity=activity,
            price_cents=price,
            occurred_at=now - timedelta(seconds=rng.randint(0, 86_400 * 20)),
        )
        out.append(
            (
                str(checkin.checkin_id),
                checkin.card_number.encode(),
                checkin.model_dump_json().encode(),
                envelope.headers(),
            )
        )
    gc.freeze()
    return out


async def claims_stats(claims_url: str, headers: dict[str, str]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        response = await client.get(f"{claims_url}/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


async def seeding_settled(
    claims_url: str,
    notifications_url: str,
    headers: dict[str, str],
    seeded: Seeded,
    timeout_s: float = 300,
) -> None:
    """Until the claims service knows every seeded card and device and nothing is waiting to
    be sent: the seeding's own events are not the traffic the latency is measured on.
    `headers` carry the operations token."""
    deadline = time.perf_counter() + timeout_s
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        while time.perf_counter() < deadline:
            claims = (await client.get(f"{claims_url}/stats")).raise_for_status().json()
            notes = (await client.get(f"{notifications_url}/stats/queue")).raise_for_status().json()
            if (
                claims["known_cards"] >= len(seeded.card_numbers)
                and claims["known_devices"] >= len(seeded.devices)
                and notes["pending"] == 0
            ):
                return
            await asyncio.sleep(0.5)
    raise TimeoutError(f"the seeding had not settled after {timeout_s} s")


@asynccontextmanager
async def outcome_watch(bootstrap: str, fetch_wait_ms: int) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer of the claim outcome topics, positioned at their end. Outcomes are
    watched on the wire, not counted in the database: an outcome event is written in the
    transaction of its claim, transfers and payable, and polling the claims service's
    /stats (full scans of claims and ledger) ten times a second cost PostgreSQL ~35 µs
    per check-in of the very run it measured. Every fetch costs the embedded broker CPU
    too: `fetch_wait_ms` is the resolution the measurement needs, no finer."""
    observer = AIOKafkaConsumer(
        topics.CLAIM_APPROVED.name,
        topics.CLAIM_REJECTED.name,
        bootstrap_servers=bootstrap,
        group_id=f"bench-outcomes-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="latest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1500,
        fetch_max_wait_ms=fetch_wait_ms,
    )
    await observer.start()
    try:
        while not observer.assignment():
            await observer.getmany(timeout_ms=100)
        await observer.seek_to_end()
        yield observer
    finally:
        await observer.stop()


async def watch_outcomes(
    observer: AIOKafkaConsumer,
    wanted: set[str],
    on_outcome: Callable[[str, Any], None],
    timeout_s: float,
) -> None:
    """Calls `on_outcome(checkin_id, decided_at)` once per wanted check-in decided (a relay
    may publish an outcome twice: the second is ignored); `decided_at` is the outcome's own
    field, as sent (an ISO 8601 string)."""
    pending = set(wanted)
    deadline = time.perf_counter() + timeout_s
    while pending:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{len(wanted) - len(pending)} of {len(wanted)} decided")
        batch = await observer.getmany(timeout_ms=200)
        for records in batch.values():
            for record in records:
                outcome = orjson.loads(record.value or b"{}")
                checkin_id = outcome.get("checkin_id")
                if checkin_id in pending:
                    pending.discard(checkin_id)
                    on_outcome(checkin_id, outcome.get("decided_at"))


_SLICE = 1000


@dataclass(frozen=True)
class Throughput:
    checkins: int
    started: float  # perf_counter at the first send
    decided_s: float  # until the last outcome

    @property
    def per_s(self) -> float:
        return self.checkins / self.decided_s


async def throughput(
    bootstrap: str,
    claims_url: str,
    headers: dict[str, str],
    prepared: list[Prepared],
    progress: Any = None,
    timeout_s: float = 900,
) -> Throughput:
    """From the first send until every check-in has its outcome (its ledger transfer and
    payable are written in the same transaction)."""
    before = (await claims_stats(claims_url, headers))["decided"]
    decided = 0

    def count(_checkin_id: str, _decided_at: Any) -> None:
        nonlocal decided
        decided += 1
        if progress is not None and decided % 500 == 0:
            progress(decided)

    # The devices' records, handed to the producer a partition's batch at a time as the
    # outbox relay does (the broker gets the same record batches; this process, which
    # shares the machine, spends ~4 µs less per check-in than with a send per record).
    # In slices, sent concurrently, so that every partition fills from the start.
    records = [
        OutgoingRecord(checkin_id, topics.CHECKIN_RECORDED.name, key, headers, body)
        for checkin_id, key, body, headers in prepared
    ]
    slices = [records[i : i + _SLICE] for i in range(0, len(records), _SLICE)]
    # A 100 ms wait: a tenth of a second on a run of half a minute or more.
    async with outcome_watch(bootstrap, fetch_wait_ms=100) as observer:
        watching = asyncio.create_task(
            watch_outcomes(observer, {p[0] for p in prepared}, count, timeout_s)
        )
        producer = make_producer(bootstrap, client_id="bench-devices")
        await producer.start()
        started = time.perf_counter()
        try:
            sender = KafkaSender(producer)
            await asyncio.gather(*(sender.send_all(s) for s in slices))
            await watching
            elapsed = time.perf_counter() - started
        finally:
            watching.cancel()
            await producer.stop()
    if progress is not None:
        progress(decided)
    # The database agrees: every check-in of the run has its claim.
    recorded = (await claims_stats(claims_url, headers))["decided"] - before
    if recorded < len(prepared):
        raise RuntimeError(f"{len(prepared)} outcomes seen but only {recorded} claims recorded")
    return Throughput(len(prepared), started, elapsed)


async def mail_settled_s(
    notifications_url: str,
    headers: dict[str, str],
    run: Throughput,
    timeout_s: float = 900,
    quiet_s: float = 1.5,
) -> float:
    """Seconds from the run's first send until the notifications service has caught up:
    nothing pending and no new delivery for `quiet_s` (every card holder told). Mail is
    sent after the outcome, so it can lag behind the decisions without slowing them.
    Polled twice a second on /stats/queue (indexes only: /stats counts the whole delivery
    log, ~25 µs of PostgreSQL per check-in of the run at this rate)."""
    async with httpx.AsyncClient(timeout=30, headers=headers) as client:
        last_created, quiet_since = None, time.perf_counter()
        while time.perf_counter() - run.started < timeout_s:
            response = await client.get(f"{notifications_url}/stats/queue")
            response.raise_for_status()
            queue = response.json()
            now = time.perf_counter()
            if queue["latest_created_at"] != last_created or queue["pending"]:
                last_created, quiet_since = queue["latest_created_at"], now
            elif now - quiet_since >= quiet_s:
                return quiet_since - run.started
            await asyncio.sleep(0.5)
    raise TimeoutError(f"notifications still busy after {timeout_s} s")


@dataclass(frozen=True)
class Latency:
    """Milliseconds from a check-in's emission to its outcome event, and its two parts:
    until claims decided it (the broker, the consumer's fetch, the transaction's reads and
    the signature check), and from the decision until the outcome arrived (writing and
    committing the batch, the outbox relay's pass, the broker again)."""

    total: list[float]
    to_decision: list[float]
    decision_to_outcome: list[float]

    @classmethod
    def of(cls, timings: list[tuple[float, float, float]]) -> Latency:
        """From (emitted, decided, outcome seen) wall-clock seconds per check-in. One
        machine, one clock: the decision's time is claims' own."""
        ms = [((d - e) * 1000, (o - d) * 1000, (o - e) * 1000) for e, d, o in timings]
        return cls(
            total=sorted(m[2] for m in ms),
            to_decision=sorted(m[0] for m in ms),
            decision_to_outcome=sorted(m[1] for m in ms),
        )

    def p(self, pct: float) -> float:
        """A percentile of the whole way, emission to outcome."""
        return _percentile(self.total, pct)

    def percentiles(self) -> dict[str, dict[str, float]]:
        return {
            part: {"p50": _percentile(values, 50), "p99": _percentile(values, 99)}
            for part, values in (
                ("emission_to_decision", self.to_decision),
                ("decision_to_outcome", self.decision_to_outcome),
            )
        }


async def latency_ms(bootstrap: str, prepared: list[Prepared], rate_per_s: float) -> Latency:
    """From a check-in's emission to its outcome event, at a steady rate."""
    sent_at: dict[str, float] = {}
    timings: list[tuple[float, float, float]] = []

    def record(checkin_id: str, decided_at: Any) -> None:
        decided = datetime.fromisoformat(decided_at).timestamp()
        timings.append((sent_at[checkin_id], decided, time.time()))

    # Latencies are tens of milliseconds: a 5 ms wait adds ~2.5 ms to each.
    async with outcome_watch(bootstrap, fetch_wait_ms=5) as observer:
        watching = asyncio.create_task(
            watch_outcomes(observer, {p[0] for p in prepared}, record, 120)
        )
        producer = make_producer(bootstrap, client_id="bench-steady")
        await producer.start()
        interval = 1 / rate_per_s
        start = time.perf_counter()
        try:
            for index, (checkin_id, key, body, headers) in enumerate(prepared):
                delay = start + index * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sent_at[checkin_id] = time.time()
                await producer.send(
                    topics.CHECKIN_RECORDED.name, value=body, key=key, headers=headers
                )
            await watching
        finally:
            watching.cancel()
            await producer.stop()
    return Latency.of(timings)


def _percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(pct / 100 * (len(sorted_values) - 1)))
    return round(sorted_values[index], 1)


@dataclass
class RssSampler:
    """Samples the resident memory of the given processes in a background thread."""

    pids: Any  # a callable returning the current pids
    interval_s: float = 0.5
    max_mb: float = 0.0
    per_pid_mb: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            for pid in self.pids():
                try:
                    mb = psutil.Process(pid).memory_info().rss / 1_048_576
                except psutil.Error:
                    continue
                self.per_pid_mb[pid] = max(self.per_pid_mb.get(pid, 0.0), mb)
                self.max_mb = max(self.max_mb, mb)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


@dataclass
class CpuMeter:
    """CPU seconds spent by named groups of processes since `start`, read with `lap`: where a
    check-in's cost goes. Groups in `with_children` count their processes' children too
    (PostgreSQL's backends); a process that ends in between is missed."""

    groups: dict[str, list[int]]
    with_children: set[str] = field(default_factory=set)
    _before: dict[str, float] = field(default_factory=dict)

    def _sample(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for name, pids in self.groups.items():
            seconds = 0.0
            for pid in pids:
                try:
                    root = psutil.Process(pid)
                    family = root.children(recursive=True) if name in self.with_children else []
                    for process in [root, *family]:
                        times = process.cpu_times()
                        seconds += times.user + times.system
                except psutil.Error:
                    continue
            totals[name] = seconds
        return totals

    def start(self) -> None:
        self._before = self._sample()

    def nice(self) -> dict[str, int]:
        """Each group's CPU priority (its first process's nice value): the figures only mean
        what they mean with the priorities the stack runs at."""
        values: dict[str, int] = {}
        for name, pids in self.groups.items():
            with contextlib.suppress(psutil.Error, IndexError):
                values[name] = psutil.Process(pids[0]).nice()
        return values

    def lap(self) -> dict[str, float]:
        """The seconds spent since `start`, per group (the meter keeps running)."""
        after = self._sample()
        return {k: after[k] - self._before.get(k, 0.0) for k in after}


def ms_per(spent_s: dict[str, float], count: int) -> dict[str, float]:
    return {k: round(v * 1000 / count, 3) for k, v in spent_s.items()}


def cpu_bound_rate(ms_per_checkin: dict[str, float], cores: int) -> int:
    """The rate at which the processes' CPU per check-in would fill every core: the ceiling
    of the end-to-end rate on this machine. A measured rate close to it means the machine
    ran out of CPU; well below it, that something waited (a chain of round trips, a lock)."""
    total = sum(ms_per_checkin.values())
    return round(cores * 1000 / total) if total > 0 else 0
