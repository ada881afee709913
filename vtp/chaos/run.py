"""The chaos run: a seeded workload replayed under seeded faults, then compared with the
reference model — outcome by outcome, account by account, payment by payment."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from shared import topics
from shared.envelope import new_envelope
from shared.events.checkins import CancellationReason
from shared.kafka import make_producer
from vtp.chaos.faults import Injector, schedule
from vtp.chaos.reference import CHAOS_POLICY_TOML, Model, Visit
from vtp.chaos.workload import Kind, Workload, generate
from vtp.demo.municipality import PROVIDERS
from vtp.demo.seed import Seeded, seed
from vtp.demo.traffic import UNKNOWN_CARD
from vtp.device.signer import DeviceIdentity
from vtp.devstack.stack import Stack

Message = tuple[bytes, bytes, list[tuple[str, bytes]]]  # key, value, headers


@dataclass
class Plan:
    messages: list[Message] = field(default_factory=list)
    authenticated: set[str] = field(default_factory=set)  # check-ins that must get a claim row
    forged: set[str] = field(default_factory=set)  # must be refused as unauthenticated
    provider_of: dict[str, str] = field(default_factory=dict)
    device_of: dict[str, DeviceIdentity] = field(default_factory=dict)  # signs its cancellation
    card_of: dict[str, str] = field(default_factory=dict)
    index_to_checkin: dict[int, str] = field(default_factory=dict)


def build_plan(workload: Workload, seeded: Seeded, model: Model, now: datetime) -> Plan:
    plan = Plan()
    sent: dict[int, tuple[Message, Any]] = {}
    for p in workload.checkins:
        if p.kind is Kind.MALFORMED:
            headers = new_envelope(
                type=topics.CHECKIN_RECORDED.event_type, source="/chaos"
            ).headers()
            plan.messages.append((b"6299", b'{"checkin_id": ', headers))
            continue
        if p.kind in (Kind.DUPLICATE, Kind.RESENT):
            assert p.repeats is not None
            (key, value, headers), checkin = sent[p.repeats]
            if p.kind is Kind.RESENT:  # a device retry: the same check-in, a new envelope
                headers = new_envelope(
                    type=topics.CHECKIN_RECORDED.event_type, source="/chaos"
                ).headers()
            plan.messages.append((key, value, headers))
            continue
        device = seeded.devices[2 * p.provider + p.device]
        activity, price = device.activities[p.activity]
        holder = seeded.holders[p.holder]
        card = UNKNOWN_CARD if p.kind is Kind.UNKNOWN_CARD else holder.card_number
        occurred = (
            now + timedelta(days=2)
            if p.kind is Kind.FUTURE
            else now - timedelta(minutes=p.minutes_ago)
        )
        envelope, checkin = device.identity.check_in(
            card_number=card, activity=activity, price_cents=price, occurred_at=occurred
        )
        checkin_id = str(checkin.checkin_id)
        plan.index_to_checkin[p.index] = checkin_id
        body = checkin.model_dump_json().encode()
        if p.kind is Kind.FORGED:
            tampered = json.loads(body)
            tampered["price_cents"] = price * 10
            body = json.dumps(tampered).encode()
            plan.forged.add(checkin_id)
        else:
            plan.authenticated.add(checkin_id)
            plan.provider_of[checkin_id] = str(device.identity.provider_id)
            plan.device_of[checkin_id] = device.identity
            plan.card_of[checkin_id] = card
            visit = Visit(
                holder=holder.holder_id,
                target_group=holder.target_group,
                provider=str(device.identity.provider_id),
                till_discount=PROVIDERS[p.provider].mode == "till_discount",
                activity=activity.id,
                price_cents=price,
                occurred_at=occurred,
            )
            model.check_in(
                checkin_id,
                visit,
                unknown_card=p.kind is Kind.UNKNOWN_CARD,
                in_future=p.kind is Kind.FUTURE,
            )
        message = (card.encode(), body, envelope.headers())
        sent[p.index] = (message, checkin)
        plan.messages.append(message)
    return plan


async def run_chaos(
    state_dir: Path,
    seed_value: int,
    checkins: int,
    console: Console,
    faults: int | None = None,
    rate_per_s: float = 600,
) -> dict[str, Any]:
    workload = generate(seed_value, checkins, [len(p.activities) for p in PROVIDERS])
    fault_plan = schedule(seed_value, checkins, faults or max(10, checkins // 900))
    policy_path = await asyncio.to_thread(_write_policy, state_dir)
    stack = Stack(state_dir, claims_processes=2, extra_env={"CLAIMS_POLICY_FILE": str(policy_path)})
    fault_log: list[str] = []
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with console.status("starting the stack (two claims consumers)"):
        await asyncio.to_thread(stack.start)
    injector = Injector(stack, fault_log)
    try:
        with progress:
            task = progress.add_task("Seeding card holders", total=workload.holders)
            seeded = await seed(
                stack.url("cards"),
                workload.holders,
                random.Random(seed_value),
                lambda: progress.advance(task),
                token=stack.keys["api_token_secret"],
            )
            await _wait_claims_know(stack, workload.holders, len(seeded.devices))
            model = Model()
            plan = build_plan(workload, seeded, model, datetime.now(UTC))
            task = progress.add_task("Check-ins under faults", total=len(plan.messages))
            await _emit_under_faults(
                stack,
                plan,
                fault_plan,
                injector,
                rate_per_s,
                lambda n: progress.update(task, completed=n),
            )
            expected = len(plan.authenticated) + len(plan.forged)
            task = progress.add_task("Waiting for every outcome", total=expected)
            await _wait_db(
                stack,
                injector,
                "claims",
                _DECIDED_SQL,
                expected,
                lambda n: progress.update(task, completed=n),
            )
            reversed_expected = await _cancel(stack, workload, plan, model)
            task = progress.add_task("Cancellations", total=reversed_expected)
            await _wait_db(
                stack,
                injector,
                "claims",
                "SELECT count(*) FROM claims WHERE reversed_at IS NOT NULL",
                reversed_expected,
                lambda n: progress.update(task, completed=n),
            )
            await _payment_run(stack, injector)
            task = progress.add_task("Quiescence", total=None)
            await _quiesce(stack, injector)
            progress.update(task, total=1, completed=1)
        report = await _compare(stack, plan, model)
    finally:
        stack.stop()
    report.update(
        {
            "seed": seed_value,
            "checkins": checkins,
            "faults_injected": injector.injected,
            "fault_log": fault_log,
        }
    )
    report["ok"] = (
        report["lost"] == 0
        and report["duplicated"] == 0
        and report["mismatched_outcomes"] == 0
        and report["ledger_difference_cents"] == 0
        and report["payment_differences"] == 0
        and report["notification_differences"] == 0
    )
    return report


def _write_policy(state_dir: Path) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "chaos-policy.toml"
    path.write_text(CHAOS_POLICY_TOML)
    return path


# The notification kinds that tell a card holder a check-in's outcome (a refund, a discount
# at the till, a refusal): each authenticated check-in of a holder with a channel gets one.
_OUTCOME_KINDS = [
    "refund_approved",
    "refund_capped",
    "refund_rejected",
    "till_discount",
    "till_discount_capped",
    "till_discount_rejected",
]
# The kinds that tell a card holder their check-in was cancelled: a refund's (index 0), a
# discount at the till's (index 1, `True`).
_REVERSAL_KINDS = ["refund_reversed", "till_discount_reversed"]

# The check-ins waiting for a card claims does not know (the workload's unknown card: they
# wait up to the check-in window and a day for the card's registration, then are rejected
# as unknown_card; services/claims/parking.py).
_WAITING_FOR_CARD_SQL = (
    "SELECT DISTINCT checkin_id FROM parked_checkins WHERE awaiting_card IS NOT NULL"
    " AND checkin_id NOT IN (SELECT checkin_id FROM claims)"
)
# Decided, or waiting for a card.
_DECIDED_SQL = (
    "SELECT (SELECT count(*) FROM claims) + (SELECT count(DISTINCT checkin_id) FROM"
    " unauthenticated_checkins WHERE checkin_id NOT IN (SELECT checkin_id FROM claims))"
    " + (SELECT count(DISTINCT checkin_id) FROM parked_checkins WHERE awaiting_card IS NOT"
    " NULL AND checkin_id NOT IN (SELECT checkin_id FROM claims))"
)


async def _wait_claims_know(stack: Stack, holders: int, devices: int) -> None:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(timeout=10, headers=stack.operations_headers()) as client:
                stats = (await client.get(f"{stack.url('claims')}/stats")).json()
            if stats["known_cards"] >= holders and stats["known_devices"] >= devices:
                return
        await asyncio.sleep(0.3)
    raise TimeoutError("claims did not learn the seeded cards and devices")


async def _emit_under_faults(
    stack: Stack,
    plan: Plan,
    fault_plan: list[Any],
    injector: Injector,
    rate_per_s: float,
    progress: Any,
) -> None:
    emitted = 0

    async def faults() -> None:
        for planned in fault_plan:  # one at a time: faults overlap the stream, not each other
            while emitted < planned.at_checkin:  # noqa: ASYNC110 - the emitter owns the counter
                await asyncio.sleep(0.05)
            await injector.inject(planned)
            await asyncio.sleep(0.5)
            await injector.revive()

    fault_task = asyncio.create_task(faults())
    producer = make_producer(stack.bootstrap_servers, client_id="chaos-devices")
    await producer.start()
    start = time.perf_counter()
    try:
        for key, value, headers in plan.messages:
            delay = start + emitted / rate_per_s - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await producer.send(topics.CHECKIN_RECORDED.name, value=value, key=key, headers=headers)
            emitted += 1
            if emitted % 200 == 0:
                progress(emitted)
        await producer.flush()
        progress(emitted)
        await fault_task
    finally:
        await producer.stop()


async def _cancel(stack: Stack, workload: Workload, plan: Plan, model: Model) -> int:
    """The providers cancel some check-ins (twice, as networks do); returns how many claims
    the model says are reversed."""
    producer = make_producer(stack.bootstrap_servers, client_id="chaos-providers")
    await producer.start()
    reversed_count = 0
    try:
        for index in workload.cancellations:
            checkin_id = plan.index_to_checkin.get(index)
            if checkin_id is None or checkin_id not in plan.authenticated:
                continue
            if model.cancel(checkin_id) > 0:
                reversed_count += 1
            envelope, cancelled = plan.device_of[checkin_id].cancellation(
                checkin_id=uuid.UUID(checkin_id),
                card_number=plan.card_of[checkin_id],
                reason=CancellationReason.ACTIVITY_CANCELLED,
            )
            for _ in range(2):
                await producer.send(
                    topics.CHECKIN_CANCELLED.name,
                    value=cancelled.model_dump_json().encode(),
                    key=cancelled.card_number.encode(),
                    headers=envelope.headers(),
                )
        await producer.flush()
    finally:
        await producer.stop()
    return reversed_count


async def _wait_db(
    stack: Stack,
    injector: Injector,
    db: str,
    sql: str,
    expected: int,
    progress: Any,
    timeout_s: float = 900,
) -> None:
    deadline = time.monotonic() + timeout_s
    value = -1
    while time.monotonic() < deadline:
        await injector.revive()
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            conn = await asyncpg.connect(stack.dsns[db])
            try:
                value = int(await conn.fetchval(sql))
            finally:
                await conn.close()
            progress(value)
            if value >= expected:
                return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{db}: {value} of {expected} after {timeout_s:.0f} s")


async def _payment_run(stack: Stack, injector: Injector) -> None:
    for _ in range(60):
        await injector.revive()
        with contextlib.suppress(httpx.HTTPError):
            async with httpx.AsyncClient(timeout=60, headers=stack.operations_headers()) as client:
                response = await client.post(f"{stack.url('claims')}/payment-runs")
                if response.status_code < 300:
                    return
                if response.status_code == 401:  # no fault heals a wrong token
                    raise RuntimeError(f"payment run refused: {response.text}")
        await asyncio.sleep(1)
    raise TimeoutError("no payment run could be made")


async def _quiesce(stack: Stack, injector: Injector, timeout_s: float = 900) -> None:
    """Every outbox drained and every e-mail out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        await injector.revive()
        pending = 0
        for name in ("cards", "claims", "notifications"):
            conn = await asyncpg.connect(stack.dsns[name])
            try:
                pending += int(
                    await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
                )
                if name == "notifications":
                    pending += int(
                        await conn.fetchval(
                            "SELECT count(*) FROM deliveries WHERE status = 'pending' AND channel = 'email'"
                        )
                    )
            finally:
                await conn.close()
        if pending == 0:
            await asyncio.sleep(3)  # and stays so: consumers may still be catching up
            return
        await asyncio.sleep(1)
    raise TimeoutError("the system did not settle")


async def _compare(stack: Stack, plan: Plan, model: Model) -> dict[str, Any]:
    claims = await asyncpg.connect(stack.dsns["claims"])
    notes = await asyncpg.connect(stack.dsns["notifications"])
    try:
        rows = {
            str(r["checkin_id"]): r
            for r in await claims.fetch(
                "SELECT checkin_id, outcome, reason, amount_cents, reversed_at, holder_id,"
                " payee_kind FROM claims"
            )
        }
        unauth = {
            str(r["checkin_id"])
            for r in await claims.fetch("SELECT DISTINCT checkin_id FROM unauthenticated_checkins")
        }
        waiting = {str(r["checkin_id"]) for r in await claims.fetch(_WAITING_FOR_CARD_SQL)}
        transfers_per_claim = await claims.fetchval(
            "SELECT count(*) FROM (SELECT claim_id FROM transfers WHERE code = 'claim_approved'"
            " GROUP BY claim_id HAVING count(*) > 1) d"
        )
        balances = {
            r["account"]: int(r["balance"])
            for r in await claims.fetch(
                "SELECT account, sum(amount) AS balance FROM (SELECT debit_account AS account,"
                " amount_cents AS amount FROM transfers UNION ALL SELECT credit_account,"
                " -amount_cents FROM transfers) e GROUP BY account"
            )
        }
        payments = await claims.fetch("SELECT payee_kind, payee_id, amount_cents FROM payments")
        deliveries = await notes.fetchval(
            "SELECT count(*) FROM deliveries WHERE kind = ANY($1::text[])", _OUTCOME_KINDS
        )
        stuck = await notes.fetchval(
            "SELECT count(*) FROM deliveries WHERE channel = 'email' AND status IN ('pending', 'dead')"
        )
        dead_reasons = [
            r["last_error"]
            for r in await notes.fetch(
                "SELECT last_error FROM deliveries WHERE channel = 'email' AND status IN ('pending', 'dead') LIMIT 5"
            )
        ]
        notified = {
            (r["recipient"], r["what"]): int(r["n"])
            for r in await notes.fetch(
                "SELECT recipient, CASE WHEN kind = ANY($2::text[]) THEN kind"
                " ELSE 'outcome' END AS what, count(*) AS n FROM deliveries"
                " WHERE kind = ANY($1::text[]) OR kind = ANY($2::text[]) GROUP BY 1, 2",
                _OUTCOME_KINDS,
                _REVERSAL_KINDS,
            )
        }
        breakdown = [
            dict(r)
            for r in await notes.fetch(
                "SELECT kind, channel, status, count(*) AS n FROM deliveries GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            )
        ]
    finally:
        await claims.close()
        await notes.close()

    lost = sorted(c for c in plan.authenticated if c not in rows and c not in waiting)
    lost += sorted(c for c in plan.forged if c not in unauth or c in rows)
    mismatched: list[str] = []
    for checkin_id, expected in model.outcomes.items():
        # An unknown card's check-in waits for the card: `unknown_card` only a month on.
        if (checkin_id in waiting) != (expected.reason == "unknown_card"):
            mismatched.append(f"{checkin_id}: expected {expected}, waiting for its card")
            continue
        row = rows.get(checkin_id)
        if row is None:
            continue
        amount = 0 if row["reversed_at"] is not None else int(row["amount_cents"])
        actual = (row["outcome"], row["reason"], amount)
        if actual != (expected.outcome, expected.reason, expected.amount_cents):
            mismatched.append(f"{checkin_id}: expected {expected}, got {actual}")

    expected_expense = {
        f"expense:discount:{g}": v for g, v in model.expense_by_group().items() if v
    }
    actual_expense = {a: b for a, b in balances.items() if a.startswith("expense:") and b}
    ledger_difference = abs(sum(balances.values()))
    for account in expected_expense.keys() | actual_expense.keys():
        ledger_difference += abs(expected_expense.get(account, 0) - actual_expense.get(account, 0))
    ledger_difference += sum(abs(b) for a, b in balances.items() if a.startswith("payable:"))

    requested: dict[str, int] = {}
    for p in payments:
        who = "holder" if p["payee_kind"] == "card_holder" else "provider"
        requested[f"{who}:{p['payee_id']}"] = requested.get(f"{who}:{p['payee_id']}", 0) + int(
            p["amount_cents"]
        )
    owed = {k: v for k, v in model.payable_by_payee().items() if v}
    payment_differences = sum(
        1 for k in owed.keys() | requested.keys() if owed.get(k, 0) != requested.get(k, 0)
    )
    with_holder = sum(1 for r in rows.values() if r["holder_id"] is not None)
    notification_problems = _notification_problems(rows, notified)
    return {
        "lost": len(lost),
        "duplicated": int(transfers_per_claim or 0) + max(0, int(deliveries) - with_holder),
        "claims_with_holder": with_holder,
        "mismatched_outcomes": len(mismatched),
        "ledger_difference_cents": ledger_difference,
        "payment_differences": payment_differences,
        "notification_differences": len(notification_problems) + int(stuck),
        "approved_cents": sum(v for v in owed.values()),
        "examples": (lost[:5] + mismatched[:5]),
        "deliveries": breakdown,
        "undelivered_reasons": dead_reasons,
        "notification_examples": notification_problems[:5],
    }


def _notification_problems(rows: dict[str, Any], notified: dict[tuple[str, str], int]) -> list[str]:
    """Per card holder: one refund message per outcome, and one per reversal, worded for
    what the approval paid (a refund withdrawn, a discount at the till lapsed). The one
    allowed gap: an approval whose reversal reached notifications first is not announced
    (the holder is told about the reversal instead, not "you get money" after "cancelled")."""
    outcomes: dict[str, int] = {}
    reversals: dict[tuple[str, str], int] = {}
    for row in rows.values():
        if row["holder_id"] is not None:
            key = f"holder:{row['holder_id']}"
            outcomes[key] = outcomes.get(key, 0) + 1
            if row["reversed_at"] is not None:
                kind = _REVERSAL_KINDS[row["payee_kind"] == "provider"]
                reversals[key, kind] = reversals.get((key, kind), 0) + 1
    problems = []
    for key in sorted(outcomes.keys() | {k for k, _ in notified}):
        told = notified.get((key, "outcome"), 0)
        expected = outcomes.get(key, 0)
        may_skip = sum(reversals.get((key, kind), 0) for kind in _REVERSAL_KINDS)
        if not expected - may_skip <= told <= expected:
            problems.append(f"{key}: {expected} outcomes, {told} outcome messages")
        for kind in _REVERSAL_KINDS:
            want, got = reversals.get((key, kind), 0), notified.get((key, kind), 0)
            if got != want:
                problems.append(f"{key}: {want} reversals told as {kind}, {got} messages")
    return problems
