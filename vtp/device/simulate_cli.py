"""`vtp device simulate`: load from many simulated devices (vtp/device/simulate.py)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from vtp.device import endpoints
from vtp.device.simulate import random_card_numbers, register_devices, simulate
from vtp.device.terminal import emit, say


def simulate_command(
    devices: int = typer.Option(10, "--devices", min=1, help="Simulated devices (at most 200)."),
    rate: float = typer.Option(
        50.0, "--rate", help="Check-ins per second, all devices together (at most 2000)."
    ),
    duration: float = typer.Option(10.0, "--duration", help="Seconds to run (at most 600)."),
    provider: str | None = typer.Option(
        None, "--provider", help="Provider of the devices (default: a new one)."
    ),
    cards: Annotated[
        list[str] | None,
        typer.Option("--card", help="Card numbers to scan (default: random, never issued)."),
    ] = None,
    price_cents: int = typer.Option(500, "--price-cents", min=0),
    bootstrap: str | None = endpoints.BOOTSTRAP_OPTION,
    cards_url: str | None = typer.Option(None, "--cards-url"),
    seed: int = typer.Option(1, "--seed"),
    token: str | None = endpoints.TOKEN_OPTION,
) -> None:
    """Drive many simulated devices against the local (loopback) broker, then report."""
    import random

    broker = endpoints.bootstrap(bootstrap)
    url = endpoints.cards_url(cards_url)

    async def run() -> dict[str, Any]:
        files = await register_devices(url, endpoints.cards_headers(token, url), provider, devices)
        numbers = cards or random_card_numbers(random.Random(seed), 50)
        report = await simulate(
            broker,
            files,
            rate=rate,
            duration_s=duration,
            cards=numbers,
            price_cents=price_cents,
            seed=seed,
            clock_notice=say,
        )
        return {**report.__dict__, "rate_per_s": report.rate_per_s}

    try:
        emit(asyncio.run(run()))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
