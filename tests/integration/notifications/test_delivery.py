"""Must-show 1–3: real SMTP (aiosmtpd) and a real webhook receiver that verifies Standard
Webhooks signatures; SMTP down for a while loses nothing and doubles nothing; a 410 ends
dead at once with its reason; the same event delivered three times gives one e-mail."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from services.notifications.delivery import DeliveryWorker
from services.notifications.settings import NotificationsSettings
from shared.consumer import Incoming, decode
from shared.metrics import ServiceMetrics
from tests.integration.notifications.conftest import (
    Feed,
    WebhookReceiver,
    approved,
    card,
    drain,
    holder,
    mails,
    organisation,
    payment_requested,
    text_of,
)
from vtp.devstack.processes import free_port
from vtp.devstack.smtp import SmtpSink

pytestmark = pytest.mark.integration


async def test_same_event_three_times_gives_one_email(
    feed: Feed, worker: DeliveryWorker, pool: asyncpg.Pool, smtp: SmtpSink, keys: tuple[str, str]
) -> None:
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(organisation(org, email="ocmw@example.org"), holder(person, org, keys[1]))
    record = feed.record(approved(person))
    # Three deliveries of one Kafka record, in one batch and in separate batches…
    await feed.processor.process([record, record])
    await feed.processor.process([record])
    # …and, past the inbox, the handler itself three times: the (event, recipient) key holds.
    incoming = decode(record, feed.processor.topics)
    assert isinstance(incoming, Incoming)
    async with pool.acquire() as conn:
        for _ in range(3):
            await feed.router.route_one(conn, incoming)
    await drain(worker, pool)
    sent = mails(smtp)
    assert len(sent) == 1
    assert sent[0]["To"] == "an@example.org"
    assert sent[0]["Subject"] == "Vrijetijdspas: u krijgt € 12,50 terug"
    assert "Beste An Peeters," in text_of(sent[0])
    assert await pool.fetchval("SELECT count(*) FROM deliveries") == 1


async def test_smtp_down_for_a_while_every_message_once(
    pool: asyncpg.Pool,
    settings: NotificationsSettings,
    keys: tuple[str, str],
    tmp_path: Path,
    feed: Feed,
) -> None:
    port = free_port()
    down = settings.model_copy(update={"smtp_port": port, "max_attempts": 50})
    metrics = ServiceMetrics()
    worker = DeliveryWorker(pool, down, deliveries=metrics.deliveries())

    def deliveries(status: str) -> float | None:
        labels = {"channel": "email", "status": status}
        return metrics.registry.get_sample_value("vtp_notification_deliveries_total", labels)

    org = uuid.uuid4()
    people = [uuid.uuid4() for _ in range(6)]
    await feed(organisation(org, email="ocmw@example.org"))
    await feed(*(holder(p, org, keys[1], email=f"p{i}@example.org") for i, p in enumerate(people)))
    await feed(*(approved(p) for p in people))
    # The server is down: every attempt fails, nothing is lost, everything waits.
    for _ in range(3):
        await worker.deliver_due()
        await asyncio.sleep(0.25)
    rows = await pool.fetch("SELECT status, attempts, last_error FROM deliveries")
    assert len(rows) == 6
    assert {r["status"] for r in rows} == {"pending"}
    assert all(r["attempts"] >= 2 for r in rows)
    assert all("unreachable" in r["last_error"] for r in rows)
    # Each failed attempt counted once, as to be retried.
    assert deliveries("retry") == sum(r["attempts"] for r in rows)
    assert deliveries("sent") is None
    # It comes back on the same port.
    sink = SmtpSink(tmp_path / "late-mail", port=port)
    sink.start()
    try:
        await drain(worker, pool)
        # A few more passes must not send anything again.
        for _ in range(3):
            await worker.deliver_due()
        sent = mails(sink)
        assert sorted(m["To"] for m in sent) == sorted(f"p{i}@example.org" for i in range(6))
        assert len({m["Message-ID"] for m in sent}) == 6
        assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'sent'") == 6
        assert deliveries("sent") == 6
        assert deliveries("dead") is None
    finally:
        sink.stop()


async def test_signed_webhooks_verified_by_a_real_receiver(
    feed: Feed,
    worker: DeliveryWorker,
    pool: asyncpg.Pool,
    receiver: WebhookReceiver,
    keys: tuple[str, str],
) -> None:
    org, person = uuid.uuid4(), uuid.uuid4()
    url = receiver.expect("/ocmw", f"org:{org}", [503, 204])  # one hiccup, then fine
    await feed(
        organisation(org, email="ocmw@example.org", webhook=url), holder(person, org, keys[1])
    )
    await feed(payment_requested(person))
    await drain(worker, pool)
    calls = [r for r in receiver.received if r.path == "/ocmw"]
    assert len(calls) == 2 and all(r.verified for r in calls)
    assert calls[0].headers["webhook-id"] == calls[1].headers["webhook-id"]  # a retry, not new
    body = receiver.bodies("/ocmw")[-1]
    assert body["type"] == "vrijetijdspas.payment_requested"
    assert body["data"]["amount_cents"] == 990
    assert "Peeters" not in calls[-1].body.decode()
    row = await pool.fetchrow("SELECT status, attempts, channel FROM deliveries")
    assert row is not None
    assert dict(row) == {"status": "sent", "attempts": 2, "channel": "webhook"}


async def test_webhook_gone_is_not_retried_and_ends_dead_with_reason(
    feed: Feed,
    worker: DeliveryWorker,
    pool: asyncpg.Pool,
    receiver: WebhookReceiver,
    keys: tuple[str, str],
) -> None:
    org, person = uuid.uuid4(), uuid.uuid4()
    url = receiver.expect("/gone", f"org:{org}", [410])
    await feed(organisation(org, webhook=url), holder(person, org, keys[1]))
    await feed(payment_requested(person), card(person, org))
    await drain(worker, pool)
    for _ in range(3):
        await worker.deliver_due()
        await asyncio.sleep(0.1)
    gone = [r for r in receiver.received if r.path == "/gone"]
    assert len(gone) == 2  # two notifications, each tried exactly once
    assert all(r.verified for r in gone)
    rows = await pool.fetch("SELECT status, attempts, last_error FROM deliveries")
    assert {r["status"] for r in rows} == {"dead"}
    assert all(r["attempts"] == 1 for r in rows)
    assert all("HTTP 410" in r["last_error"] for r in rows)


async def test_permanent_smtp_failures_end_dead(
    feed: Feed, worker: DeliveryWorker, pool: asyncpg.Pool, smtp: SmtpSink, keys: tuple[str, str]
) -> None:
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(organisation(org, email="not an address"), holder(person, org, keys[1]))
    await feed(payment_requested(person))
    await drain(worker, pool)
    row = await pool.fetchrow("SELECT status, attempts, last_error FROM deliveries")
    assert row is not None
    assert row["status"] == "dead" and row["attempts"] == 1
    assert row["last_error"].startswith("invalid address")
    assert mails(smtp) == []


async def test_a_lease_reads_the_due_rows_in_order_not_the_whole_backlog(
    pool: asyncpg.Pool, worker: DeliveryWorker
) -> None:
    """Behind a backlog, a pass takes the earliest due rows straight from the index of
    pending rows; read as a bitmap and sorted, every due row was read for every pass.
    Statistics are as they are mid-run: the backlog arrived after the last ANALYZE."""
    await pool.execute("ANALYZE deliveries")  # of an empty table
    await pool.execute(
        "INSERT INTO deliveries (delivery_id, event_id, correlation_id, kind, recipient,"
        " channel, address, subject, body, next_attempt_at)"
        " SELECT gen_random_uuid(), gen_random_uuid(), 'c', 'refund_approved', 'holder:' || gen_random_uuid(),"
        " 'letter', 'Straat 1', 'Terugbetaling', 'Beste', now() - n * interval '1 second'"
        " FROM generate_series(1, 5000) AS n"
    )
    earliest = await pool.fetch(
        "SELECT delivery_id FROM deliveries ORDER BY next_attempt_at LIMIT 100"
    )
    before = await _index_entries_read(pool)
    assert await worker.deliver_due(limit=100) == 100
    read = await _index_entries_read(pool, more_than=before)
    assert 0 < read - before < 1000  # in index order: about the 100 taken, not all 5,000
    taken = await pool.fetch("SELECT delivery_id FROM deliveries WHERE status <> 'pending'")
    assert {r["delivery_id"] for r in taken} == {r["delivery_id"] for r in earliest}


async def _index_entries_read(pool: asyncpg.Pool, more_than: int = -1) -> int:
    """Entries read from the index of pending rows so far, once more than `more_than`. The
    statistics reach the view when the reading connection goes idle, at the latest 10 s
    after its previous report; a count that never moves means the index was not read."""
    query = "SELECT idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname = 'deliveries_due'"
    deadline = asyncio.get_running_loop().time() + 15
    while (read := int(await pool.fetchval(query))) <= more_than:
        assert asyncio.get_running_loop().time() < deadline, "deliveries_due was not read"
        await asyncio.sleep(0.05)
        await pool.execute("SELECT pg_stat_clear_snapshot()")
    return read
