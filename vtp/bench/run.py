"""The benchmark run: ceilings first, then the production path on the same machine."""

from __future__ import annotations

import asyncio
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from vtp.bench.e2e import (
    CpuMeter,
    RssSampler,
    cpu_bound_rate,
    latency_ms,
    mail_settled_s,
    ms_per,
    prepare_checkins,
    seeding_settled,
    throughput,
)
from vtp.bench.raw import (
    gauge_warnings,
    machine_gauge_ms,
    raw_broker_msgs_per_s,
    raw_db_rows_per_s,
)
from vtp.bench.statements import reset as reset_statements
from vtp.bench.statements import top as top_statements
from vtp.demo.seed import seed
from vtp.devstack.stack import Stack


@dataclass(frozen=True)
class BenchSize:
    holders: int
    e2e_checkins: int
    steady_seconds: int
    steady_rate: int
    raw_messages: int
    raw_rows: int


FULL = BenchSize(
    holders=2000,
    e2e_checkins=50_000,
    steady_seconds=20,
    steady_rate=200,
    raw_messages=100_000,
    raw_rows=100_000,
)
SMOKE = BenchSize(
    holders=30,
    e2e_checkins=1_000,
    steady_seconds=3,
    steady_rate=200,
    raw_messages=5_000,
    raw_rows=5_000,
)


async def run_bench(
    state_dir: Path, size: BenchSize, console: Console, *, statements: bool = False
) -> dict[str, Any]:
    """`statements`: also report which SQL statements PostgreSQL spent the one-process
    throughput phase on (pg_stat_statements; the embedded PostgreSQL only)."""
    stack = Stack(state_dir, statement_stats=statements)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    result: dict[str, Any] = {"e2e_checkins": size.e2e_checkins, "holders": size.holders}
    # Taken at the quiet moments of the run: before it, before each measured phase, after.
    gauges = [machine_gauge_ms()]
    with console.status("starting the stack"):
        await asyncio.to_thread(stack.start)  # it runs its own event loop for set-up
    sampler = RssSampler(stack.service_pids)
    sampler.start()
    try:
        with progress:
            task = progress.add_task("Ceiling: plain aiokafka produce+consume", total=None)
            result["raw_broker_msgs_per_s"] = round(
                await raw_broker_msgs_per_s(stack.bootstrap_servers, size.raw_messages)
            )
            progress.update(task, total=1, completed=1)
            task = progress.add_task("Ceiling: batched COPY inserts", total=None)
            result["raw_db_rows_per_s"] = round(
                await raw_db_rows_per_s(stack.dsns["claims"], size.raw_rows)
            )
            progress.update(task, total=1, completed=1)

            task = progress.add_task("Seeding card holders", total=size.holders)
            seeded = await seed(
                stack.url("cards"),
                size.holders,
                random.Random(3),
                lambda: progress.advance(task),
                token=stack.keys["api_token_secret"],
            )
            operations = stack.operations_headers()
            rng = random.Random(5)
            task = progress.add_task("Cards and devices known to claims", total=None)
            await seeding_settled(
                stack.url("claims"), stack.url("notifications"), operations, seeded
            )
            progress.update(task, total=1, completed=1)
            gauges.append(machine_gauge_ms())
            # Latency at a steady rate first, while nothing else is going on.
            task = progress.add_task(f"Latency at {size.steady_rate}/s", total=None)
            steady = prepare_checkins(seeded, size.steady_rate * size.steady_seconds, rng)
            latency = await latency_ms(stack.bootstrap_servers, steady, size.steady_rate)
            progress.update(task, total=1, completed=1)
            total = size.e2e_checkins
            prepared = prepare_checkins(seeded, total, rng)
            gauges.append(machine_gauge_ms())
            task = progress.add_task("End to end, 1 claims process", total=total)
            cpu = _cpu_meter(stack)
            result["nice_by_process"] = cpu.nice()
            stats_dsn = stack.postgres.dsn() if statements and stack.postgres else None
            if stats_dsn is not None:
                await reset_statements(stats_dsn)
            cpu.start()
            e2e_1 = await throughput(
                stack.bootstrap_servers,
                stack.url("claims"),
                operations,
                prepared,
                lambda n: progress.update(task, completed=n),
            )
            decided_cpu = cpu.lap()
            if stats_dsn is not None:
                costs = await top_statements(stats_dsn, total)
                result["statements_until_decided"] = [c.as_dict() for c in costs]
            task = progress.add_task("Every card holder's mail sent", total=None)
            settled_s = await mail_settled_s(stack.url("notifications"), operations, e2e_1)
            progress.update(task, total=1, completed=1)
            result["cpu_ms_per_checkin"] = ms_per(cpu.lap(), total)
            result["cpu_ms_per_checkin_until_decided"] = ms_per(decided_cpu, total)
            result["cpu_bound_checkins_per_s"] = cpu_bound_rate(
                result["cpu_ms_per_checkin_until_decided"], os.cpu_count() or 1
            )
            task = progress.add_task("Starting a second claims process", total=None)
            await asyncio.to_thread(stack.add_service, "claims")
            progress.update(task, total=1, completed=1)
            prepared = prepare_checkins(seeded, total, rng)
            task = progress.add_task("End to end, 2 claims processes", total=total)
            e2e_2 = await throughput(
                stack.bootstrap_servers,
                stack.url("claims"),
                operations,
                prepared,
                lambda n: progress.update(task, completed=n),
            )
    finally:
        sampler.stop()
        stack.stop()
    gauges.append(machine_gauge_ms())
    result["machine_gauge_ms"] = {"min": min(gauges), "max": max(gauges)}
    names = {n: s.proc.pid for n, s in stack.named_services().items() if s.proc is not None}
    result.update(
        {
            "e2e_checkins_per_s": round(e2e_1.per_s),
            "ratio_e2e_to_raw_broker": round(e2e_1.per_s / result["raw_broker_msgs_per_s"], 3),
            "with_mail_checkins_per_s": round(total / settled_s),
            "p50_ms": latency.p(50),
            "p99_ms": latency.p(99),
            "latency_parts_ms": latency.percentiles(),
            "rss_mb_max": round(sampler.max_mb, 1),
            "rss_mb_by_process": {
                name: round(sampler.per_pid_mb.get(pid, 0.0), 1) for name, pid in names.items()
            },
            "scaling": {"1": round(e2e_1.per_s), "2": round(e2e_2.per_s)},
        }
    )
    _print(console, result)
    return result


def _cpu_meter(stack: Stack) -> CpuMeter:
    """Every process of the run by role; "bench" is this process: the simulated devices'
    producer and the progress display."""
    groups: dict[str, list[int]] = {"bench": [os.getpid()]}
    for service in stack.services:
        if service.proc is not None:
            groups.setdefault(service.name, []).append(service.proc.pid)
    if stack.broker is not None:
        groups["broker"] = [stack.broker.pid]
    if stack.postgres is not None:
        groups["postgres"] = [stack.postgres.pid]
    if stack.smtp is not None and stack.smtp.pid is not None:
        groups["smtp sink"] = [stack.smtp.pid]
    return CpuMeter(groups, with_children={"postgres"})


_BREAKDOWNS = (
    "cpu_ms_per_checkin",
    "cpu_ms_per_checkin_until_decided",
    "rss_mb_by_process",
    "nice_by_process",
    "statements_until_decided",
    "latency_parts_ms",
)
TARGETS = {"e2e_checkins_per_s": (">=", 5000), "p99_ms": ("<=", 100), "rss_mb_max": ("<=", 150)}


def _print(console: Console, result: dict[str, Any]) -> None:
    table = Table(title="vtp bench (everything on this machine)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("target")
    for key, value in result.items():
        if key in _BREAKDOWNS:
            continue
        target = TARGETS.get(key)
        table.add_row(key, str(value), f"{target[0]} {target[1]}" if target else "")
    console.print(table)
    gauge: dict[str, float] = result.get("machine_gauge_ms", {})
    if gauge:
        for warning in gauge_warnings(gauge["min"], gauge["max"]):
            console.print(f"[yellow]careful[/]: {warning}")
    _print_latency_parts(console, result.get("latency_parts_ms", {}))
    decided: dict[str, float] = result.get("cpu_ms_per_checkin_until_decided", {})
    settled: dict[str, float] = result.get("cpu_ms_per_checkin", {})
    if not settled:
        return
    nice: dict[str, int] = result.get("nice_by_process", {})
    breakdown = _table(
        "CPU per check-in (ms), 1 claims process",
        "process",
        "nice>",
        "until every outcome>",
        "until every mail is sent>",
        "share>",
    )
    total = sum(settled.values()) or 1.0
    for name, ms in sorted(settled.items(), key=lambda item: -item[1]):
        breakdown.add_row(
            name,
            str(nice.get(name, "")),
            f"{decided.get(name, 0.0):.3f}",
            f"{ms:.3f}",
            f"{ms / total:.0%}",
        )
    breakdown.add_row("total", "", f"{sum(decided.values()):.3f}", f"{total:.3f}", "")
    console.print(breakdown)
    _print_statements(console, result.get("statements_until_decided", []))


def _print_latency_parts(console: Console, parts: dict[str, dict[str, float]]) -> None:
    """Where a check-in's latency goes: which side of the decision a slow tail is on."""
    if not parts:
        return
    table = _table("Latency at a steady rate, in two parts (ms)", "part", "p50>", "p99>")
    for part, values in parts.items():
        table.add_row(part.replace("_", " "), str(values["p50"]), str(values["p99"]))
    console.print(table)


def _print_statements(console: Console, costs: list[dict[str, Any]]) -> None:
    if not costs:
        return
    table = _table(
        "PostgreSQL statements until every outcome, 1 claims process",
        "database",
        "calls>",
        "µs / check-in>",
        "WAL B / check-in>",
        "statement",
    )
    for cost in costs:
        table.add_row(
            cost["database"],
            str(cost["calls"]),
            f"{cost['us_per_checkin']:.1f}",
            str(cost["wal_bytes_per_checkin"]),
            cost["query"],
        )
    console.print(table)


def _table(title: str, *columns: str) -> Table:
    """A table with these columns; a name ending in ">" is a right-aligned figure."""
    table = Table(title=title)
    for column in columns:
        figure = column.endswith(">")
        table.add_column(column.removesuffix(">"), justify="right" if figure else "left")
    return table
