"""`vtp deadletters …`: what is in the dead-letter topic, and sending back what a consumer
can process now (after a deploy in the wrong order, or a fixed fault)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from rich.progress import Progress
from rich.table import Table

from shared.deadletter import DeadLetterReason
from shared.kafka import KafkaSender, caught_up, make_producer, make_reader
from shared.outbox import OutgoingRecord
from shared.topics import DEAD_LETTER_TOPIC
from vtp.locate import BOOTSTRAP_OPTION, STATE_OPTION, broker_address, console, state_folder
from vtp.operations.deadletters import (
    Group,
    Letter,
    dead_lettered_since,
    letter_of,
    parse_since,
    plan_redrive,
    summarise,
)

deadletters_app = typer.Typer(
    help="The dead-letter topic: what is in it, and sending back what can be processed now.",
    no_args_is_help=True,
)

REASON_OPTION = typer.Option(
    None,
    "--reason",
    help="Only these reasons (repeatable; default: every reason a consumer may now accept).",
)
CONSUMER_OPTION = typer.Option(
    None, "--consumer", help="Only the dead letters of this consumer group (repeatable)."
)
SINCE_OPTION = typer.Option(
    None,
    "--since",
    help="Only what was dead-lettered since then: a time ago (90m, 6h, 2d) or a moment"
    " (2026-11-28T02:00, local time).",
)


@deadletters_app.command("list")
def list_command(
    since: str | None = SINCE_OPTION,
    state_dir: Path | None = STATE_OPTION,
    bootstrap_servers: str | None = BOOTSTRAP_OPTION,
    as_json: bool = typer.Option(False, "--json", help="One JSON array on standard output."),
) -> None:
    """Dead letters per consumer, reason and source topic: how many, since when, the latest
    detail, and whether they can be sent back. Never the messages themselves."""
    since_at = since_option(since)
    letters = _read(broker_address(state_folder(state_dir), bootstrap_servers), since_at)
    groups = summarise(letters)
    if as_json:
        typer.echo(json.dumps([group_as_dict(g) for g in groups]))
        return
    when = f" since {_short(since_at.astimezone(UTC))} UTC" if since_at else ""
    if not groups:
        console.print(f"no dead letters{when}")
        return
    table = Table(title=f"{len(letters)} dead letter(s) in {DEAD_LETTER_TOPIC}{when}")
    columns = ("consumer", "reason", "source topic", "count", "first (UTC)", "last (UTC)")
    for column in (*columns, "re-drive"):
        table.add_column(column, justify="right" if column == "count" else "left")
    table.add_column("latest detail", overflow="fold", max_width=60)
    for g in groups:
        table.add_row(
            g.consumer,
            g.reason,
            g.source_topic,
            str(g.count),
            _short(g.first_at),
            _short(g.last_at),
            "yes" if g.redrivable else "no",
            g.detail,
        )
    console.print(table)


@deadletters_app.command("redrive")
def redrive_command(
    reasons: list[DeadLetterReason] | None = REASON_OPTION,
    consumers: list[str] | None = CONSUMER_OPTION,
    source_topic: str | None = typer.Option(None, help="Only messages from this topic."),
    since: str | None = SINCE_OPTION,
    yes: bool = typer.Option(False, "--yes", help="Send without asking."),
    state_dir: Path | None = STATE_OPTION,
    bootstrap_servers: str | None = BOOTSTRAP_OPTION,
) -> None:
    """Send the chosen dead letters' original messages back to their topics, once each.

    Every consumer of a topic receives them again; those that processed them before find
    them in their inbox and change nothing. Dead letters stay in the dead-letter topic (it
    is a log); a message refused again is dead-lettered again, with its reason."""
    since_at = since_option(since)
    bootstrap = broker_address(state_folder(state_dir), bootstrap_servers)
    plan = plan_redrive(
        _read(bootstrap, since_at),
        reasons=[r.value for r in reasons] if reasons else None,
        consumers=consumers or None,
        source_topic=source_topic,
    )
    per_topic: dict[str, int] = {}
    for record in plan.records:
        per_topic[record.topic] = per_topic.get(record.topic, 0) + 1
    for why, count in sorted(plan.left.items()):
        console.print(f"left alone: {count} ({why})")
    if not plan.records:
        console.print("nothing to send back")
        typer.echo(json.dumps({"sent": 0}))
        return
    for topic, count in sorted(per_topic.items()):
        console.print(f"to send back: {count} message(s) to {topic}")
    if not yes and not typer.confirm("Send them?", err=True):
        console.print("nothing sent")
        raise typer.Exit(1)
    asyncio.run(send_back(bootstrap, plan.records))
    console.print(f"[green]sent back {len(plan.records)} message(s)[/]")
    typer.echo(json.dumps({"sent": len(plan.records), "per_topic": per_topic}))


def since_option(text: str | None, option: str = "--since") -> datetime | None:
    """A `--since`-like option's moment; a usage error naming the option if unreadable."""
    try:
        return parse_since(text, datetime.now(UTC)) if text is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from exc


def _read(bootstrap: str, since: datetime | None) -> list[Letter]:
    try:
        return asyncio.run(read_dead_letters(bootstrap, since=since))
    except TimeoutError as exc:
        console.print(f"[red]the dead-letter topic could not be read to its end[/]: {exc}")
        raise typer.Exit(1) from exc
    except KafkaError as exc:
        console.print(
            f"[red]the broker at {bootstrap} did not answer[/]: {type(exc).__name__}:"
            " is it running and reachable (and is this its address)?"
        )
        raise typer.Exit(1) from exc


async def read_dead_letters(
    bootstrap: str, *, since: datetime | None = None, timeout_s: float = 120.0
) -> list[Letter]:
    """Every dead letter (from `since` on), to the end the broker names while it is read;
    no consumer group, so reading changes nothing. With `since`, each partition is read
    from its first record written at or after it (less a margin for the clocks of the
    hosts that wrote them), not from its start: a look at the last hour stays cheap
    however many letters the topic keeps."""
    consumer = make_reader(bootstrap, client_id="vtp-deadletters")
    try:
        await consumer.start()
        await consumer.topics()  # the cluster's metadata, with the topic's partitions
        partitions = sorted(consumer.partitions_for_topic(DEAD_LETTER_TOPIC) or ())
        if not partitions:
            return []
        tps = [TopicPartition(DEAD_LETTER_TOPIC, p) for p in partitions]
        consumer.assign(tps)
        starts = await consumer.beginning_offsets(tps)
        if since is not None:
            # Seeking forward from where the reader's own reset put it: a fetch of earlier
            # records still in flight only adds letters the time filter drops.
            starts = await first_written_at(consumer, tps, since - _CLOCK_MARGIN)
            for tp, offset in starts.items():
                consumer.seek(tp, offset)
        letters: list[Letter] = []
        read = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("reading", total=None)
            while not await caught_up(consumer):
                if loop.time() > deadline:
                    raise TimeoutError(f"not at its end after {timeout_s:.0f} s")
                batch = await consumer.getmany(*tps, timeout_ms=300, max_records=2000)
                for r in (r for rs in batch.values() for r in rs):
                    read += 1
                    letter = letter_of(r.key, r.value, list(r.headers or ()))
                    if letter is not None:
                        letters.append(letter)
                highwaters = [consumer.highwater(tp) for tp in tps]
                if None not in highwaters:
                    total = sum(h - starts[tp] for tp, h in zip(tps, highwaters, strict=True))
                    progress.update(task, completed=read, total=total)
        return dead_lettered_since(letters, since)
    finally:
        await consumer.stop()


_CLOCK_MARGIN = timedelta(minutes=5)


async def first_written_at(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], at: datetime
) -> dict[TopicPartition, int]:
    """Per partition, the offset of its first record written at or after `at`; where none
    is, the end the broker names (the embedded broker's is early: a few older records are
    read, and dropped by their time). Kafka answers "none" without an offset; the embedded
    broker with offset 0 and timestamp -1."""
    found = await consumer.offsets_for_times({tp: int(at.timestamp() * 1000) for tp in tps})
    ends = await consumer.end_offsets(tps)
    return {
        tp: hit.offset if (hit := found.get(tp)) is not None and hit.timestamp >= 0 else ends[tp]
        for tp in tps
    }


async def send_back(bootstrap: str, records: list[OutgoingRecord]) -> None:
    """Publish re-driven records to their topics, a thousand at a time."""
    producer = make_producer(bootstrap, client_id="vtp-deadletters")
    await producer.start()
    try:
        sender = KafkaSender(producer)
        for start in range(0, len(records), 1000):
            await sender.send_all(records[start : start + 1000])
    finally:
        await producer.stop()


def group_as_dict(g: Group) -> dict[str, object]:
    return {
        "consumer": g.consumer,
        "reason": g.reason,
        "source_topic": g.source_topic,
        "count": g.count,
        "first_at": g.first_at.isoformat() if g.first_at else None,
        "last_at": g.last_at.isoformat() if g.last_at else None,
        "latest_detail": g.detail,
        "redrivable": g.redrivable,
    }


def _short(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if at else "?"
