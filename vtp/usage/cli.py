"""`vtp usage`: the usage report for the network and the council, from the claims API."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from vtp.locate import STATE_OPTION, TOKEN_OPTION, claims_report, console, state_folder
from vtp.tables import write_views
from vtp.usage.view import FILE_VIEWS, render

OUT_OPTION = typer.Option(
    None, help="Also write usage-<period>.xlsx and a CSV per table into this folder."
)


def usage_command(
    period: str = typer.Option(..., help="A year (2026) or a month (2026-03)."),
    out: Path | None = OUT_OPTION,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON instead."),
    claims_url: str | None = typer.Option(None, help="Claims API (default: the running stack)."),
    token: str | None = TOKEN_OPTION,
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """Take-up and use per target group, sub-municipality, month, category and provider;
    counts of fewer than five card holders are not shown."""
    report = claims_report(
        state_folder(state_dir),
        claims_url,
        token,
        "/reports/usage",
        ("period", period),
        "a year (2026) or a month (2026-03)",
    )
    if as_json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        Console().print(render(report))
    if out is not None:
        for path in write_views(f"usage-{report['period']}", report, FILE_VIEWS, out):
            console.print(f"written: {path}")
