"""What the device commands print: a result as one JSON line on stdout (for scripts), and
lines for the staff on stderr."""

from __future__ import annotations

import json
from typing import Any

import typer


def say(line: str) -> None:
    typer.echo(line, err=True)


def emit(data: dict[str, Any]) -> None:
    typer.echo(json.dumps(data, default=str))
