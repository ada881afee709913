"""Where a command finds the system it works on: the state folder of a stack started by
`vtp up`, and the broker (an explicit option, the environment, or that running stack)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console

from vtp.devstack.stack import bearer, operations_token, read_running_stack

console = Console(stderr=True)

STATE_OPTION = typer.Option(None, help="State folder (default: $VTP_STATE_DIR or .vtp).")
TOKEN_OPTION = typer.Option(
    None,
    envvar="VTP_OPERATIONS_TOKEN",
    show_default=False,
    help="The claims API's operations token (default: the running stack's keys).",
)
BOOTSTRAP_OPTION = typer.Option(
    None, help="Kafka bootstrap servers (default: $KAFKA_BOOTSTRAP_SERVERS or the running stack)."
)


def state_folder(given: Path | None) -> Path:
    return (given or Path(os.environ.get("VTP_STATE_DIR", ".vtp"))).resolve()


def running_stack(state: Path) -> dict[str, Any]:
    running = read_running_stack(state)
    if running is None:
        console.print(f"[red]no running stack in {state}[/]: start one with `vtp up`")
        raise typer.Exit(2)
    return running


def broker_address(state: Path, given: str | None) -> str:
    return (
        given
        or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        or running_stack(state)["bootstrap_servers"]
    )


def claims_report(
    state: Path,
    claims_url: str | None,
    token: str | None,
    route: str,
    param: tuple[str, str],
    expected: str,
) -> Any:
    """GET one of claims' report routes with the operations token; a refused token or a
    refused `param` (the only parameter a report takes) is a clear exit, not a traceback."""
    url = claims_url or running_stack(state)["services"]["claims"]["url"]
    name, value = param
    response = httpx.get(
        f"{url}{route}",
        params={name: value},
        headers=bearer(token or api_token(state)),
        timeout=120,
    )
    if response.status_code == 401:
        console.print(f"[red]the claims API refused the operations token[/]: {response.text}")
        raise typer.Exit(2)
    if response.status_code == 422:
        raise typer.BadParameter(f"{value!r}: expected {expected}", param_hint=f"--{name}")
    response.raise_for_status()
    return response.json()


def api_token(state: Path) -> str:
    """The running stack's operations token, or a clear exit saying how to give one."""
    try:
        return operations_token(state)
    except RuntimeError as exc:
        console.print(f"[red]no operations token[/]: set VTP_OPERATIONS_TOKEN or --token ({exc})")
        raise typer.Exit(2) from exc
