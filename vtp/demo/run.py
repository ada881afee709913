"""The demo: seed, emit check-ins with a progress bar, wait for every outcome, pay, tell."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shared.money import format_eur
from vtp.demo.seed import seed
from vtp.demo.traffic import emit_checkins
from vtp.devstack.stack import bearer


@dataclass(frozen=True)
class Endpoints:
    bootstrap_servers: str
    cards_url: str
    claims_url: str
    notifications_url: str
    operations_token: str  # claims and notifications want it

    def client(self, timeout_s: float) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=timeout_s, headers=bearer(self.operations_token))


async def _get(endpoints: Endpoints, url: str) -> Any:
    async with endpoints.client(30) as client:
        response = await client.get(url)
        response.raise_for_status()
        return response.json()


async def _post(endpoints: Endpoints, url: str) -> Any:
    async with endpoints.client(60) as client:
        response = await client.post(url)
        response.raise_for_status()
        return response.json()


async def run_demo(
    endpoints: Endpoints,
    checkins: int,
    holders: int,
    seed_value: int,
    console: Console,
    timeout_s: float = 600,
) -> dict[str, Any]:
    rng = random.Random(seed_value)
    before = await _get(endpoints, f"{endpoints.claims_url}/stats")
    notes_before = await _get(endpoints, f"{endpoints.notifications_url}/stats")
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task("Kaarthouders registreren", total=holders)
        seeded = await seed(endpoints.cards_url, holders, rng, lambda: progress.advance(task))
        task = progress.add_task("Wachten op kaarten en toestellen bij claims", total=holders)
        devices = len(seeded.devices)
        await _wait(
            lambda s: (
                (s["known_cards"] - before["known_cards"])
                if s["known_devices"] - before["known_devices"] >= devices
                else 0
            ),
            holders,
            endpoints,
            f"{endpoints.claims_url}/stats",
            progress,
            task,
            timeout_s,
        )
        task = progress.add_task("Check-ins versturen", total=checkins)
        started = time.monotonic()
        traffic = await emit_checkins(
            endpoints.bootstrap_servers, seeded, checkins, rng, lambda n: progress.advance(task, n)
        )
        task = progress.add_task("Wachten op elke beslissing", total=traffic.distinct)
        # A check-in with a card claims does not know waits for the card (up to the check-in
        # window and a day): it has its outcome then, not during the demo.
        stats = await _wait(
            lambda s: s["decided"] - before["decided"] + _waiting_for_card(s, before),
            traffic.distinct,
            endpoints,
            f"{endpoints.claims_url}/stats",
            progress,
            task,
            timeout_s,
        )
        elapsed = time.monotonic() - started
        run = await _post(endpoints, f"{endpoints.claims_url}/payment-runs")
        task = progress.add_task("Meldingen versturen", total=None)
        notes = await _wait_notifications(endpoints, notes_before, run, timeout_s)
        progress.update(task, total=1, completed=1)
        stats = await _get(endpoints, f"{endpoints.claims_url}/stats")
    summary = _summary(traffic, stats, before, run, notes, notes_before, elapsed)
    _print_tables(console, stats, summary)
    return summary


def _waiting_for_card(stats: dict[str, Any], before: dict[str, Any]) -> int:
    return int(stats.get("checkins_awaiting_card", 0)) - int(
        before.get("checkins_awaiting_card", 0)
    )


async def _wait(
    measure: Any,
    target: int,
    endpoints: Endpoints,
    url: str,
    progress: Progress,
    task: Any,
    timeout_s: float,
) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        stats = await _get(endpoints, url)
        done = measure(stats)
        progress.update(task, completed=min(done, target))
        if done >= target:
            return stats
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done} of {target} done after {timeout_s:.0f} s")
        await asyncio.sleep(0.25)


async def _wait_notifications(
    endpoints: Endpoints, before: dict[str, Any], run: dict[str, Any], timeout_s: float
) -> Any:
    """Wait until the notifications caused by this run are sent (or settle)."""
    deadline = time.monotonic() + min(timeout_s, 120)
    url = f"{endpoints.notifications_url}/stats"
    notes = await _get(endpoints, url)
    while time.monotonic() < deadline:
        notes = await _get(endpoints, url)
        if notes["sent"] - before["sent"] >= 1 and notes["pending"] == 0:
            break
        if run["payments"] == 0:
            break
        await asyncio.sleep(0.5)
    return notes


def _summary(
    traffic: Any,
    stats: dict[str, Any],
    before: dict[str, Any],
    run: dict[str, Any],
    notes: dict[str, Any],
    notes_before: dict[str, Any],
    elapsed: float,
) -> dict[str, Any]:
    return {
        "emitted": traffic.emitted,
        "distinct": traffic.distinct,
        "duplicates_sent": traffic.duplicates,
        "malformed_sent": traffic.malformed,
        "decided": stats["decided"] - before["decided"],
        "waiting_for_card": _waiting_for_card(stats, before),
        "approved": stats["approved"] - before["approved"],
        "rejected": stats["rejected"] - before["rejected"],
        "claims": stats["claims"] - before["claims"],
        "claim_transfers": stats["claim_transfers"] - before["claim_transfers"],
        "approved_cents": stats["approved_cents"] - before["approved_cents"],
        "ledger_debit_cents": stats["ledger_debit_cents"],
        "ledger_credit_cents": stats["ledger_credit_cents"],
        "payment_requests": run["payments"],
        "payment_total_cents": run["total_cents"],
        "notifications_sent": notes["sent"] - notes_before["sent"],
        "checkins_per_s": round(traffic.distinct / elapsed, 1) if elapsed > 0 else None,
    }


REASONS_NL = {
    "": "goedgekeurd",
    "unknown_card": "onbekende kaart",
    "card_blocked": "kaart geblokkeerd",
    "card_expired": "kaart vervallen",
    "not_eligible": "geen recht op die dag",
    "category_not_eligible": "categorie komt niet in aanmerking",
    "provider_not_partner": "aanbieder is geen partner",
    "already_today": "vandaag al terugbetaald",
    "budget_exhausted": "jaarbudget op",
    "bad_signature": "ongeldige handtekening",
    "unknown_device": "onbekend toestel",
    "replayed": "herhaald bericht",
    "in_the_future": "tijdstip in de toekomst",
    "out_of_window": "te laat ingediend",
}


def _print_tables(console: Console, stats: dict[str, Any], summary: dict[str, Any]) -> None:
    outcomes = Table(title="Beslissingen (alle check-ins in de databank)")
    for column in ("uitkomst", "reden", "aantal", "bedrag"):
        outcomes.add_column(column, justify="right" if column in ("aantal", "bedrag") else "left")
    for row in stats["outcomes"]:
        outcomes.add_row(
            row["outcome"],
            REASONS_NL.get(row["reason"], row["reason"]),
            str(row["n"]),
            format_eur(int(row["cents"])),
        )
    for row in stats["unauthenticated"]:
        outcomes.add_row(
            "rejected", REASONS_NL.get(row["reason"], row["reason"]), str(row["n"]), ""
        )
    console.print(outcomes)
    totals = Table(title="Deze demo")
    totals.add_column("wat")
    totals.add_column("waarde", justify="right")
    for key, value in summary.items():
        shown = (
            format_eur(value) if key.endswith("_cents") and isinstance(value, int) else str(value)
        )
        totals.add_row(key, shown)
    console.print(totals)


def print_json_line(summary: dict[str, Any]) -> None:
    print(json.dumps(summary, sort_keys=True))
