"""Where a command finds the system it works on: the state folder of a stack started by
`vtp up`, and the broker (an explicit option, the environment, or that running stack)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from vtp.devstack.stack import read_running_stack

console = Console(stderr=True)

STATE_OPTION = typer.Option(None, help="State folder (default: $VTP_STATE_DIR or .vtp).")
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
