"""`vtp status`: one look at the whole system — is every service ready, does anything wait
in an outbox, is any consumer group behind — and exit 1 if something needs a person."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
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
from vtp.operations.lag import TopicLag
from vtp.operations.lag_cli import SYSTEM_TOPICS, read_lags
from vtp.operations.status import Limits, ServiceHealth, health_of, per_group, problems

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
    as_json: bool = typer.Option(False, "--json", help="One JSON object on standard output."),
    state_dir: Path | None = STATE_OPTION,
    bootstrap_servers: str | None = BOOTSTRAP_OPTION,
) -> None:
    """Every service's readiness and outbox, every consumer group's lag, and a verdict:
    exit 0 when all is well, 1 when something needs a person (for cron or monitoring)."""
    state = state_folder(state_dir)
    urls = _service_urls(services, state)
    bootstrap = broker_address(state, bootstrap_servers)
    health, lags, broker_problem = asyncio.run(_collect(urls, bootstrap))
    found = problems(health, lags, Limits(lag_above, outbox_wait_s))
    if broker_problem:
        found.insert(0, broker_problem)
    if as_json:
        report = {
            "ok": not found,
            "problems": found,
            "services": [asdict(h) for h in health],
            "consumer_groups": [asdict(g) for g in per_group(lags)],
        }
        typer.echo(json.dumps(report))
    else:
        _print(health, lags, found)
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


async def _collect(
    urls: dict[str, str], bootstrap: str
) -> tuple[list[ServiceHealth], list[TopicLag], str | None]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        health = await asyncio.gather(*(_ask(client, n, u) for n, u in sorted(urls.items())))
    try:
        lags = await read_lags(bootstrap, None, SYSTEM_TOPICS, timeout_s=20)
    except (KafkaError, TimeoutError) as exc:
        return list(health), [], f"the broker at {bootstrap} did not answer ({type(exc).__name__})"
    return list(health), lags, None


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
