"""The whole pipeline on real processes: crash safety, poison handling and traceability."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared import topics
from shared.envelope import new_envelope
from tests.support.checkins import (
    make_checkins,
    seed_stack,
    send,
    started_producer,
    stats,
    wait_stats,
)
from tests.support.kafka import header, produce_raw, read_topic, uncommitted
from vtp.devstack.stack import Stack

pytestmark = pytest.mark.e2e
CHECKINS = topics.CHECKIN_RECORDED.name


async def test_sigkill_of_claims_mid_stream_loses_nothing_and_counts_nothing_twice(
    stack: Stack,
) -> None:
    seeded = await seed_stack(stack, holders=25)
    before = await stats(stack)
    checkins = make_checkins(seeded, 900, random.Random(11))
    producer = await started_producer(stack)
    claims = stack.service("claims")
    try:
        for index, (envelope, checkin) in enumerate(checkins):
            await send(producer, envelope, checkin)
            if index == 300:
                await producer.flush()
                # Let the consumer get busy, then kill it without warning.
                await wait_stats(
                    stack, lambda s: s["decided"] > before["decided"], "first outcomes"
                )
                claims.kill()
            if index == 600:
                claims.start()  # restarted while the stream goes on
        # The network delivers a slice of the stream again after the restart.
        for envelope, checkin in checkins[250:350]:
            await send(producer, envelope, checkin)
        await producer.flush()
    finally:
        await producer.stop()
    after = await wait_stats(
        stack,
        lambda s: s["decided"] - before["decided"] >= len(checkins),
        "every check-in to be decided",
        timeout_s=180,
    )
    await asyncio.sleep(2)  # a second outcome, if one were coming, would show by now
    after = await stats(stack)
    assert after["decided"] - before["decided"] == len(checkins)
    assert after["claims"] == after["claim_transfers"]  # one ledger transfer per claim
    assert after["claims"] - before["claims"] == after["approved"] - before["approved"]
    assert after["ledger_debit_cents"] == after["ledger_credit_cents"] > 0

    # On the wire: outcome events may be re-published after the crash, but never with a new
    # id — every check-in has exactly one outcome event id.
    outcome_ids: dict[str, set[str]] = {}
    for topic in (topics.CLAIM_APPROVED.name, topics.CLAIM_REJECTED.name):
        for record in await read_topic(stack.bootstrap_servers, topic):
            checkin_id = json.loads(record.value)["checkin_id"]
            outcome_ids.setdefault(checkin_id, set()).add(header(record, "ce_id") or "")
    ours = {str(c.checkin_id) for _, c in checkins}
    assert ours <= set(outcome_ids)
    assert all(len(outcome_ids[c]) == 1 for c in ours)

    # Offsets are committed in the background, after the database commits: once the stream
    # is quiet, the group has committed every record it processed.
    for _ in range(50):
        left = await uncommitted(stack.bootstrap_servers, "claims.checkins", CHECKINS)
        if left == 0:
            break
        await asyncio.sleep(0.2)
    assert left == 0


async def _claims_metrics(stack: Stack) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx.AsyncClient(timeout=10, headers=stack.operations_headers()) as client:
        response = await client.get(f"{stack.url('claims')}/metrics")
    response.raise_for_status()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _outcome_counts(stats_: dict[str, Any]) -> dict[tuple[str, str], int]:
    counts = {(o["outcome"], o["reason"]): o["n"] for o in stats_["outcomes"]}
    counts |= {("not_authenticated", u["reason"]): u["n"] for u in stats_["unauthenticated"]}
    return counts


async def test_malformed_check_ins_are_dead_lettered_and_the_stream_goes_on(stack: Stack) -> None:
    seeded = await seed_stack(stack, holders=5, seed_value=8)
    before = await stats(stack)
    metrics_before = await _claims_metrics(stack)
    checkins = make_checkins(seeded, 10, random.Random(12))
    marker = uuid.uuid4().hex
    producer = await started_producer(stack)
    try:
        for index, (envelope, checkin) in enumerate(checkins):
            await send(producer, envelope, checkin)
            if index == 4:  # poison in the middle of the stream, on the same partitions
                await producer.flush()
                bad_headers = new_envelope(
                    type=topics.CHECKIN_RECORDED.event_type, source="/t"
                ).headers()
                await produce_raw(
                    stack.bootstrap_servers,
                    topics.CHECKIN_RECORDED.name,
                    f'{{"broken": "{marker}'.encode(),
                    key=checkin.card_number.encode(),
                    headers=bad_headers,
                )
                await produce_raw(
                    stack.bootstrap_servers,
                    topics.CHECKIN_RECORDED.name,
                    json.dumps({"checkin_id": marker}).encode(),
                    key=checkin.card_number.encode(),
                    headers=bad_headers,
                )
        await producer.flush()
    finally:
        await producer.stop()
    await wait_stats(
        stack,
        lambda s: s["decided"] - before["decided"] >= len(checkins),
        "the check-ins after the poison",
    )
    dead = [
        r
        for r in await read_topic(stack.bootstrap_servers, topics.DEAD_LETTER_TOPIC)
        if marker.encode() in (r.value or b"")
    ]
    assert sorted(header(r, "dlq_reason") or "" for r in dead) == [
        "malformed_json",
        "schema_violation",
    ]
    assert all(header(r, "dlq_source_topic") == topics.CHECKIN_RECORDED.name for r in dead)
    assert all(header(r, "dlq_detail") for r in dead)

    # The operators' metrics count what the database holds: each outcome and reason as
    # /stats, and the two poison messages by reason.
    after, metrics_after = await stats(stack), await _claims_metrics(stack)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return metrics_after.get(key, 0.0) - metrics_before.get(key, 0.0)

    counted, counted_before = _outcome_counts(after), _outcome_counts(before)
    decided = {key: n - counted_before.get(key, 0) for key, n in counted.items()}
    assert sum(decided.values()) == len(checkins)
    for (outcome, reason), n in decided.items():
        assert grew("vtp_checkin_outcomes_total", outcome=outcome, reason=reason) == n
    for reason in ("malformed_json", "schema_violation"):
        labels = {"consumer": "claims.checkins", "reason": reason}
        assert grew("vtp_consumer_dead_letters_total", **labels) == 1
    assert grew("vtp_consumer_records_total", consumer="claims.checkins") >= len(checkins) + 2
    cents = sum(o["cents"] for o in after["outcomes"]) - sum(o["cents"] for o in before["outcomes"])
    assert grew("vtp_checkin_approved_cents_total") == cents
    # Every outcome event (and each dead letter) went out through the relay.
    assert grew("vtp_outbox_published_total") >= len(checkins) + 2
    assert ("vtp_outbox_pending_rows", ()) in metrics_after


async def test_every_service_serves_its_metrics_claims_and_notifications_with_the_token(
    stack: Stack,
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        cards = await client.get(f"{stack.url('cards')}/metrics")
        assert cards.status_code == 200
        assert 'vtp_consumer_records_total{consumer="cards.usage"}' in cards.text
        for name, consumer in (("claims", "claims.checkins"), ("notifications", "notifications")):
            url = f"{stack.url(name)}/metrics"
            assert (await client.get(url)).status_code == 401, name
            scraped = await client.get(url, headers=stack.operations_headers())
            assert scraped.status_code == 200, name
            assert f'vtp_consumer_records_total{{consumer="{consumer}"}}' in scraped.text
            assert "vtp_outbox_pending_rows" in scraped.text


def _status(stack: Stack, *args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vtp.cli",
            "status",
            "--json",
            "--state-dir",
            str(stack.state_dir),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout, done.stderr
    report: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return done.returncode, report


async def test_status_says_all_is_well_and_names_a_service_that_stops_answering(
    stack: Stack,
) -> None:
    await seed_stack(stack, holders=3, seed_value=5)  # so that claims' card consumer commits
    code, report = _status(stack)
    assert (code, report["problems"]) == (0, [])
    assert [s["name"] for s in report["services"]] == sorted(stack.named_services())
    assert all(s["ready"] and s["outbox_parked"] == 0 for s in report["services"])
    assert {"claims.cards", "notifications"} <= {g["group"] for g in report["consumer_groups"]}

    notifications = stack.service("notifications").proc
    assert notifications is not None
    os.kill(notifications.pid, signal.SIGSTOP)  # hung: its port still takes connections
    try:
        code, report = _status(stack)
    finally:
        os.kill(notifications.pid, signal.SIGCONT)
    assert code == 1
    # Under a stack whose state names its processes, a stopped one is told from a hung one.
    assert report["problems"][0] == (
        f"notifications is not ready (its process (pid {notifications.pid}) is stopped"
        f" (SIGSTOP or Ctrl-Z), not hung: `kill -CONT {notifications.pid}` resumes it)"
    )
    assert [s["name"] for s in report["services"] if not s["ready"]] == ["notifications"]

    # A message no one can read: dead-lettered by claims, and named by the next look at
    # what was dead-lettered since the moment before it.
    since = datetime.now(UTC).isoformat()
    await produce_raw(stack.bootstrap_servers, CHECKINS, b'{"broken', key=b"4f1c")
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        code, report = _status(stack, "--dead-letters-since", since)
        if report["dead_letters"] or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(1)
    assert code == 1
    [letter] = report["dead_letters"]
    assert (letter["consumer"], letter["reason"], letter["count"]) == (
        "claims.checkins",
        "invalid_envelope",  # no event headers: it is refused before its body is read
        1,
    )
    assert report["problems"] == [
        f"1 message(s) from {CHECKINS} dead-lettered by claims.checkins since {since}"
        " (invalid_envelope: unsupported or missing ce_specversion None): they will not be"
        " processed as they are (a redrive would be refused again);"
        f" `vtp deadletters list --since {since}`"
    ]
