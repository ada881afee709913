"""`vtp status`: one look at the whole system — is every service ready, does anything wait
in an outbox, is any consumer group behind — and exit 1 if something needs a person."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import typer
from aiokafka.errors import KafkaError
from rich.table import Table

from vtp.locate import (
    BOOTSTRAP_OPTION,
    STATE_OPTION,
    broker_address,
    console,
    running_stack,
    state_folder,
)
from vtp.operations.deadletters import Letter, summarise
from vtp.operations.deadletters_cli import group_as_dict, read_dead_letters, since_option
from vtp.operations.lag import TopicLag
from vtp.operations.lag_cli import SYSTEM_TOPICS, read_lags
from vtp.operations.status import (
    Limits,
    ServiceHealth,
    dead_letter_problems,
    health_of,
    per_group,
    problems,
)

SERVICE_OPTION = typer.Option(
    None,
    "--service",
    help="A service to ask, as name=url (repeatable; default: the running stack's services).",
)


def status_command(
    services: list[str] | None = SERVICE_OPTION,
    lag_above: int = typer.Option(
        Limits.lag_records,
        "--lag-above",
        min=0,
        help="Records behind on a topic that count as a problem.",
    ),
    outbox_wait_s: float = typer.Option(
        Limits.outbox_wait_s,
        "--outbox-wait",
        min=0,
        help="Seconds an event may wait in an outbox before that counts as a problem.",
    ),
    dead_letters_since: str | None = typer.Option(
        None,
        "--dead-letters-since",
        help="Also count what was dead-lettered since then (90m, 6h, or a moment): any is a"
        " problem. Read from that moment on, not the whole topic.",
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object on standard output."),
    state_dir: Path | None = STATE_OPTION,
    bootstrap_servers: str | None = BOOTSTRAP_OPTION,
) -> None:
    """Every service's readiness and outbox, every consumer group's lag, and a verdict:
    exit 0 when all is well, 1 when something needs a person (for cron or monitoring)."""
    since = since_option(dead_letters_since, "--dead-letters-since")
    state = state_folder(state_dir)
    urls = _service_urls(services, state)
    bootstrap = broker_address(state, bootstrap_servers)
    seen = asyncio.run(_collect(urls, bootstrap, since))
    found = problems(seen.health, seen.lags, Limits(lag_above, outbox_wait_s))
    if seen.broker_problem:
        found.insert(0, seen.broker_problem)
    dead = summarise(seen.letters)
    if dead_letters_since is not None:
        found += dead_letter_problems(dead, dead_letters_since)
    if as_json:
        report = {
            "ok": not found,
            "problems": found,
            "services": [asdict(h) for h in seen.health],
            "consumer_groups": [asdict(g) for g in per_group(seen.lags)],
            "dead_letters": [group_as_dict(g) for g in dead],
        }
        typer.echo(json.dumps(report))
    else:
        _print(seen.health, seen.lags, found)
    if found:
        raise typer.Exit(1)


def _service_urls(given: list[str] | None, state: Path) -> dict[str, str]:
    if not given:
        return {name: s["url"] for name, s in running_stack(state)["services"].items()}
    urls = {}
    for pair in given:
        name, sep, url = pair.partition("=")
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise typer.BadParameter(
                f"{pair!r}: expected name=http(s)://host:port", param_hint="--service"
            )
        urls[name] = url.rstrip("/")
    return urls


@dataclass
class _Seen:
    health: list[ServiceHealth]
    lags: list[TopicLag] = field(default_factory=list)
    letters: list[Letter] = field(default_factory=list)
    broker_problem: str | None = None


async def _collect(urls: dict[str, str], bootstrap: str, since: datetime | None) -> _Seen:
    async with httpx.AsyncClient(timeout=5.0) as client:
        health = await asyncio.gather(*(_ask(client, n, u) for n, u in sorted(urls.items())))
    seen = _Seen(list(health))
    try:
        seen.lags = await read_lags(bootstrap, None, SYSTEM_TOPICS, timeout_s=20)
        if since is not None:
            seen.letters = await read_dead_letters(bootstrap, since=since, timeout_s=60)
    except (KafkaError, TimeoutError) as exc:
        seen.broker_problem = f"the broker at {bootstrap} did not answer ({type(exc).__name__})"
    return seen


async def _ask(client: httpx.AsyncClient, name: str, url: str) -> ServiceHealth:
    try:
        response = await client.get(f"{url}/health/ready")
    except httpx.HTTPError as exc:
        return health_of(name, None, None, type(exc).__name__)
    try:
        body = response.json()
    except ValueError:
        body = None
    return health_of(name, response.status_code, body)


def _print(health: list[ServiceHealth], lags: list[TopicLag], found: list[str]) -> None:
    services = Table(title="Services")
    for column in (
        "service",
        "ready",
        "events waiting to be published",
        "oldest waiting",
        "parked",
        "check-ins waiting for their device",
    ):
        services.add_column(column, justify="left" if column in ("service", "ready") else "right")
    for h in health:
        oldest = h.outbox_oldest_pending_s
        services.add_row(
            h.name,
            "[green]yes[/]" if h.ready else f"[red]no[/]: {h.detail}",
            f"{h.outbox_pending:,}" if h.ready else "?",
            ("-" if oldest is None else f"{oldest:.{1 if oldest < 10 else 0}f} s")
            if h.ready
            else "?",
            (f"[red]{h.outbox_parked}[/]" if h.outbox_parked else "0") if h.ready else "?",
            "?" if not h.ready else "-" if h.checkins_parked is None else f"{h.checkins_parked:,}",
        )
    console.print(services)
    groups = Table(title="Consumer groups (records still to process)")
    for column in ("consumer group", "behind", "furthest behind on"):
        groups.add_column(column, justify="right" if column == "behind" else "left")
    for g in per_group(lags):
        groups.add_row(
            g.group,
            f"{g.behind:,}",
            f"{g.worst_topic} ({g.worst_behind:,})" if g.worst_topic else "-",
        )
    console.print(groups)
    if not found:
        console.print("[green]all well[/]")
    for problem in found:
        console.print(f"[red]problem[/]: {problem}")
