"""Where the device commands find the broker and the cards API: an option, else
`KAFKA_BOOTSTRAP_SERVERS` (the broker only), else the stack `vtp up` runs."""

from __future__ import annotations

import os
from typing import Any

import typer

from vtp.locate import state_folder

TOKEN_OPTION = typer.Option(
    None, "--token", envvar="VTP_CARDS_TOKEN", help="Cards API bearer token."
)
# `--bootstrap-servers` as in every other vtp command; `--bootstrap` as the device commands
# have always said it.
BOOTSTRAP_OPTION = typer.Option(
    None, "--bootstrap-servers", "--bootstrap", help="Kafka bootstrap servers."
)


def _running() -> dict[str, Any]:
    from vtp.devstack.stack import read_running_stack

    return read_running_stack(state_folder(None)) or {}


def bootstrap(option: str | None) -> str:
    found = (
        option or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or _running().get("bootstrap_servers")
    )
    if not found:
        raise typer.BadParameter(
            "no broker: pass --bootstrap, set KAFKA_BOOTSTRAP_SERVERS or run `vtp up`"
        )
    return str(found)


def cards_url(option: str | None) -> str:
    found = option or _running().get("services", {}).get("cards", {}).get("url")
    if not found:
        raise typer.BadParameter("no cards API: pass --cards-url or run `vtp up`")
    return str(found)


def cards_headers(token: str | None, url: str, why: str = "device registration") -> dict[str, str]:
    """The cards API wants a bearer token; by default the admin token of the running stack."""
    if token is None:
        from vtp.demo.seed import admin_token

        try:
            token = admin_token(url)
        except RuntimeError as exc:
            raise typer.BadParameter(f"{exc}: pass --token or set VTP_CARDS_TOKEN") from exc
    return {"Authorization": f"Bearer {token}", "X-Audit-Reason": why}
