"""`vtp lag`: how far each consumer group is behind, per topic — the first question at
3 a.m. ("is anything stuck, and where?"), answered from the broker alone."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from pathlib import Path

import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from rich.table import Table

from shared.kafka import make_reader
from shared.topics import ALL_TOPICS, DEAD_LETTER_TOPIC
from vtp.locate import BOOTSTRAP_OPTION, STATE_OPTION, broker_address, console, state_folder
from vtp.operations.lag import Partition, TopicLag, lag_per_topic, over

SYSTEM_TOPICS = [t.name for t in ALL_TOPICS] + [DEAD_LETTER_TOPIC]

GROUP_OPTION = typer.Option(
    None, "--group", help="Only this consumer group (repeatable; default: every group)."
)
TOPIC_OPTION = typer.Option(
    None, "--topic", help="Only this topic (repeatable; default: every topic of the system)."
)


def lag_command(
    groups: list[str] | None = GROUP_OPTION,
    topics: list[str] | None = TOPIC_OPTION,
    alert_above: int | None = typer.Option(
        None,
        "--alert-above",
        min=0,
        help="Exit 1 if any group is more than this many records behind on a topic "
        "(for a monitoring check).",
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON array on standard output."),
    state_dir: Path | None = STATE_OPTION,
    bootstrap_servers: str | None = BOOTSTRAP_OPTION,
) -> None:
    """How many records each consumer group has still to process, per topic (those written
    after its committed offsets). Reading changes nothing: no group is joined."""
    bootstrap = broker_address(state_folder(state_dir), bootstrap_servers)
    try:
        lags = asyncio.run(read_lags(bootstrap, groups or None, topics or SYSTEM_TOPICS))
    except (KafkaError, TimeoutError) as exc:
        console.print(
            f"[red]the broker at {bootstrap} did not answer[/]: {type(exc).__name__}:"
            " is it running and reachable (and is this its address)?"
        )
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps([asdict(lag) for lag in lags]))
    else:
        _print(lags)
    alerts = over(lags, alert_above) if alert_above is not None else []
    for lag in alerts:
        console.print(
            f"[red]{lag.group} is {lag.behind} record(s) behind on {lag.topic}[/]"
            f" (more than {alert_above})"
        )
    if alerts:
        raise typer.Exit(1)


def _print(lags: list[TopicLag]) -> None:
    if not lags:
        console.print("no consumer group has committed anything on these topics")
        return
    table = Table(title="Records each consumer group has still to process")
    table.add_column("consumer group")
    table.add_column("topic")
    table.add_column("behind", justify="right")
    table.add_column("partitions behind", justify="right")
    for lag in lags:
        style = "yellow" if lag.behind else ""
        table.add_row(
            lag.group,
            lag.topic,
            f"[{style}]{lag.behind:,}[/]" if style else "0",
            f"{lag.partitions_behind} of {lag.partitions}",
        )
    console.print(table)
    behind = sum(lag.behind for lag in lags)
    if behind:
        console.print(f"{behind:,} record(s) waiting in all")
    else:
        console.print("[green]every consumer group is up to date[/]")


async def read_lags(
    bootstrap: str, groups: list[str] | None, topic_names: list[str], *, timeout_s: float = 60.0
) -> list[TopicLag]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    reader = make_reader(bootstrap, client_id="vtp-lag")
    try:
        await admin.start()
        await reader.start()
        await reader.topics()  # the cluster's metadata, with every topic's partitions
        tps = [
            TopicPartition(topic, p)
            for topic in sorted(set(topic_names))
            for p in sorted(reader.partitions_for_topic(topic) or ())
        ]
        if not tps:
            return []
        starts, ends = await _bounds(reader, tps, timeout_s)
        known = [g for g, _protocol in await admin.list_consumer_groups()]
        lags: list[TopicLag] = []
        for group in sorted(g for g in known if groups is None or g in groups):
            offsets = await admin.list_consumer_group_offsets(group, partitions=tps)
            committed: dict[Partition, int | None] = {
                (tp.topic, tp.partition): (o.offset if o.offset >= 0 else None)
                for tp, o in offsets.items()
            }
            lags += lag_per_topic(group, committed, starts, ends)
        return lags
    finally:
        await reader.stop()
        await admin.close()


async def _bounds(
    reader: AIOKafkaConsumer, tps: list[TopicPartition], timeout_s: float
) -> tuple[dict[Partition, int], dict[Partition, int]]:
    """Each partition's first offset, and its end as a fetch answer names it (the high
    watermark): the embedded broker's ListOffsets names the end of the last record batch's
    first record, so only the last batch is read, from there, to learn the true end."""
    reader.assign(tps)
    starts = await reader.beginning_offsets(tps)
    for tp, near_end in (await reader.end_offsets(tps)).items():
        reader.seek(tp, near_end)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while any(reader.highwater(tp) is None for tp in tps):
        if loop.time() > deadline:
            raise TimeoutError(f"no end named for every partition after {timeout_s:.0f} s")
        await reader.getmany(*tps, timeout_ms=200, max_records=1)
    return (
        {(tp.topic, tp.partition): starts[tp] for tp in tps},
        {(tp.topic, tp.partition): int(reader.highwater(tp)) for tp in tps},
    )
