"""`vtp status`: one look at the whole system — is every service ready, does anything wait
in an outbox, is any consumer group behind — and exit 1 if something needs a person."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import typer
from aiokafka.errors import KafkaError
from rich.table import Table

from vtp.devstack.stack import operations_token
from vtp.locate import (
    BOOTSTRAP_OPTION,
    STATE_OPTION,
    TOKEN_OPTION,
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
    broker_problem,
    dead_letter_problems,
    health_of,
    mail_problems,
    per_group,
    problems,
    process_gone,
    process_stopped,
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
    token: str | None = TOKEN_OPTION,
) -> None:
    """Every service's readiness and outbox, every consumer group's lag, whether mail goes
    out, and a verdict: exit 0 when all is well, 1 when something needs a person (for cron
    or monitoring)."""
    since = since_option(dead_letters_since, "--dead-letters-since")
    state = state_folder(state_dir)
    stack = None if services else running_stack(state)
    urls = _service_urls(services, stack)
    bootstrap = broker_address(state, bootstrap_servers)
    if token is None and stack is not None:
        token = _stack_token(state)
    seen = asyncio.run(_collect(urls, bootstrap, since, token))
    if stack is not None:
        seen.health = [_with_process(h, stack) for h in seen.health]
        broker_pid = stack.get("broker_pid")
        if seen.broker_error and isinstance(broker_pid, int) and is_stopped(broker_pid):
            seen.broker_problem = broker_problem(bootstrap, seen.broker_error, broker_pid)
    found = problems(seen.health, seen.lags, Limits(lag_above, outbox_wait_s))
    if seen.broker_problem:
        found.insert(0, seen.broker_problem)
    found += mail_problems(seen.pending_mail)
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
            "mail_checked": seen.mail_note is None,
            "mail_not_checked_because": seen.mail_note,
        }
        typer.echo(json.dumps(report))
    else:
        _print(seen.health, None if seen.broker_problem else seen.lags, found, seen.mail_note)
    if found:
        raise typer.Exit(1)


def _service_urls(given: list[str] | None, stack: dict[str, Any] | None) -> dict[str, str]:
    if not given:
        assert stack is not None
        return {name: s["url"] for name, s in stack["services"].items()}
    urls = {}
    for pair in given:
        name, sep, url = pair.partition("=")
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise typer.BadParameter(
                f"{pair!r}: expected name=http(s)://host:port", param_hint="--service"
            )
        urls[name] = url.rstrip("/")
    return urls


def _stack_token(state: Path) -> str | None:
    try:
        return operations_token(state)
    except RuntimeError:
        return None


def _with_process(health: ServiceHealth, stack: dict[str, Any]) -> ServiceHealth:
    """A service of a `vtp up` stack that gave no answer, said as an exited process when
    its process is gone (`vtp up` does not restart it)."""
    pid = (stack["services"].get(health.name) or {}).get("pid")
    if health.ready or not isinstance(pid, int):
        return health
    if is_stopped(pid):
        return process_stopped(health, pid)
    ended = how_it_ended(pid)
    if ended is None:
        return health
    log = Path(stack.get("log_dir") or ".") / f"{health.name}.log"
    return process_gone(health, pid, ended, str(log))


def is_stopped(pid: int) -> bool:
    """Whether the process is stopped by a signal (SIGSTOP, Ctrl-Z): state T in /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["T"]


def how_it_ended(pid: int) -> str | None:
    """None while the process runs; else how it ended, as far as can be told: a zombie
    (dead, its end not yet collected by `vtp up`) still shows its wait status in
    /proc/<pid>/stat (field 52, Linux 3.5 and later)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "has exited"
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "has exited"
        except PermissionError:
            return None
        return None
    fields = stat.rpartition(")")[2].split()  # from field 3, the state, on
    if fields[:1] not in (["Z"], ["X"]):
        return None
    return ended_by(int(fields[49])) if len(fields) >= 50 else "has exited"


def ended_by(wait_status: int) -> str:
    """A wait status in words: killed by a signal, or exited with a status."""
    if os.WIFSIGNALED(wait_status):
        number = os.WTERMSIG(wait_status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"was killed by {name}"
    return f"exited with status {os.WEXITSTATUS(wait_status)}"


@dataclass
class _Seen:
    health: list[ServiceHealth]
    lags: list[TopicLag] = field(default_factory=list)
    letters: list[Letter] = field(default_factory=list)
    broker_problem: str | None = None
    broker_error: str | None = None  # the error's type, when the broker did not answer
    pending_mail: list[dict[str, Any]] = field(default_factory=list)
    mail_note: str | None = None  # why mail delivery was not checked


_TIMEOUT_S = 5.0


async def _collect(
    urls: dict[str, str], bootstrap: str, since: datetime | None, token: str | None = None
) -> _Seen:
    async with httpx.AsyncClient(timeout=_TIMEOUT_S) as client:
        health = await asyncio.gather(*(_ask(client, n, u) for n, u in sorted(urls.items())))
        seen = _Seen(list(health))
        await _mail(client, seen, urls, token)
    try:
        seen.lags = await read_lags(bootstrap, None, SYSTEM_TOPICS, timeout_s=20)
        if since is not None:
            seen.letters = await read_dead_letters(bootstrap, since=since, timeout_s=60)
    except (KafkaError, TimeoutError) as exc:
        seen.broker_error = type(exc).__name__
        seen.broker_problem = broker_problem(bootstrap, seen.broker_error)
    return seen


async def _ask(client: httpx.AsyncClient, name: str, url: str) -> ServiceHealth:
    try:
        response = await client.get(f"{url}/health/ready")
    except httpx.HTTPError as exc:
        return health_of(name, None, None, type(exc).__name__, url)
    try:
        body = response.json()
    except ValueError:
        body = None
    return health_of(name, response.status_code, body, url=url)


# The deliveries of the last hour are enough to see a relay that fails now, and keep the
# look cheap however long the delivery log is.
_MAIL_WINDOW = timedelta(hours=1)


async def _mail(
    client: httpx.AsyncClient, seen: _Seen, urls: dict[str, str], token: str | None
) -> None:
    """Notifications' pending e-mail, to see whether the mail relay takes it: the service
    stays ready when it does not (the mail waits and is retried)."""
    url = urls.get("notifications")
    ready = any(h.name == "notifications" and h.ready for h in seen.health)
    if url is None or not ready:
        return
    if token is None:
        seen.mail_note = "no operations token (--token or $VTP_OPERATIONS_TOKEN)"
        return
    headers = {"Authorization": f"Bearer {token}"}
    try:
        queue = await client.get(f"{url}/stats/queue", headers=headers)
        if queue.status_code != 200:
            seen.mail_note = f"notifications answered HTTP {queue.status_code} to the token"
            return
        if not queue.json().get("pending"):
            return
        since = (datetime.now(UTC) - _MAIL_WINDOW).isoformat()
        pending = await client.get(
            f"{url}/deliveries",
            params={"status": "pending", "channel": "email", "since": since, "limit": 200},
            headers=headers,
        )
        pending.raise_for_status()
        rows = pending.json()
    except (httpx.HTTPError, ValueError) as exc:
        seen.mail_note = f"notifications' delivery log could not be read ({type(exc).__name__})"
        return
    seen.pending_mail = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def _print(
    health: list[ServiceHealth],
    lags: list[TopicLag] | None,
    found: list[str],
    mail_note: str | None = None,
) -> None:
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
            "[green]yes[/]" if h.ready else "[red]no[/], see below",
            f"{h.outbox_pending:,}" if h.ready else "?",
            ("-" if oldest is None else f"{oldest:.{1 if oldest < 10 else 0}f} s")
            if h.ready
            else "?",
            (f"[red]{h.outbox_parked}[/]" if h.outbox_parked else "0") if h.ready else "?",
            "?" if not h.ready else "-" if h.checkins_parked is None else f"{h.checkins_parked:,}",
        )
    console.print(services)
    if mail_note is not None:
        console.print(f"[yellow]mail delivery not checked[/]: {mail_note}")
    if lags is None:
        console.print("consumer groups: not known, the broker did not answer")
    else:
        _print_groups(lags)
    if not found:
        console.print("[green]all well[/]")
    for problem in found:
        console.print(f"[red]problem[/]: {problem}")


def _print_groups(lags: list[TopicLag]) -> None:
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
