"""Deliveries are not kept for ever: once a delivery is over and older than the retention
period, its address, subject, body and payload are blanked (the delivery log still counts
it), in short batches; days a device was heard and old job runs go after the same period."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.notifications.api import notifications_router
from services.notifications.delivery import DeliveryWorker
from services.notifications.jobs import Jobs
from services.notifications.messages import local_day
from services.notifications.schedule import Scheduler
from services.notifications.settings import NotificationsSettings
from tests.integration.notifications.conftest import (
    NOW,
    OPERATIONS_TOKEN,
    Feed,
    approved,
    card,
    drain,
    holder,
    organisation,
    payment_requested,
)
from vtp.devstack.smtp import SmtpSink

pytestmark = pytest.mark.integration

OLD = timedelta(days=181)


async def test_old_deliveries_that_are_over_lose_their_texts_and_stay_counted(
    feed: Feed,
    worker: DeliveryWorker,
    pool: asyncpg.Pool,
    smtp: SmtpSink,
    keys: tuple[str, str],
    settings: NotificationsSettings,
) -> None:
    org, person, dead_org = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await feed(
        organisation(org, email="ocmw@example.org"),
        organisation(dead_org, email="not an address"),
        holder(person, org, keys[1]),
    )
    # Five refunds told by e-mail, one that cannot be (dead), one card in the digest queue.
    await feed(*(approved(person, 100 + n) for n in range(5)), payment_requested(person))
    await drain(worker, pool)
    await feed(holder(person, dead_org, keys[1]), payment_requested(person))
    await drain(worker, pool)
    await feed(card(person, org))
    await pool.execute("UPDATE deliveries SET created_at = created_at - $1::interval", OLD)
    await feed(approved(person, 999))  # recent: kept whole
    await drain(worker, pool)
    pending = await pool.fetchval(
        "INSERT INTO deliveries (delivery_id, event_id, correlation_id, kind, recipient,"
        " channel, address, subject, body, status, next_attempt_at, created_at)"
        " VALUES (gen_random_uuid(), gen_random_uuid(), 'c', 'refund_paid', $1, 'email',"
        " 'an@example.org', 'Onderwerp', 'Tekst', 'pending', now() + interval '1 hour',"
        " now() - interval '200 days') RETURNING delivery_id",
        f"holder:{person}",
    )
    counts = (
        "SELECT kind, channel, status, count(*) FROM deliveries GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    before = [tuple(r) for r in await pool.fetch(counts)]

    jobs = Jobs(pool, settings.model_copy(update={"retention_batch": 2}))
    result = await jobs.run("retention", NOW)
    assert (
        result["deliveries_redacted"] == 7
    )  # 5 refunds, the request to the referrer, the dead one

    rows = {
        r["delivery_id"]: r
        for r in await pool.fetch(
            "SELECT delivery_id, kind, status, recipient, address, subject, body,"
            " payload::text AS payload, redacted_at, created_at, sent_at FROM deliveries"
        )
    }
    old_over = [
        r
        for r in rows.values()
        if r["created_at"] < NOW - timedelta(days=180) and r["status"] in ("sent", "dead")
    ]
    assert len(old_over) == 7
    assert {r["status"] for r in old_over} == {"sent", "dead"}
    for r in old_over:
        assert (r["address"], r["subject"], r["body"], r["payload"]) == ("", "", "", "{}")
        assert r["redacted_at"] is not None and r["recipient"] and r["kind"]
    sent = [r for r in old_over if r["status"] == "sent"]
    assert all(r["sent_at"] is not None for r in sent)
    # Not over yet, or recent: whole.
    assert rows[pending]["body"] == "Tekst" and rows[pending]["redacted_at"] is None
    waiting = [r for r in rows.values() if r["status"] == "scheduled"]
    assert [r["kind"] for r in waiting] == ["card_issued"] and waiting[0]["body"]
    recent = [r for r in rows.values() if r["created_at"] > NOW - timedelta(days=1)]
    assert recent and all(r["body"] and r["redacted_at"] is None for r in recent)
    # The log counts the same.
    assert [tuple(r) for r in await pool.fetch(counts)] == before
    assert (await jobs.run("retention", NOW))["deliveries_redacted"] == 0

    # An operator cannot send a blanked dead delivery again (there is nothing to send).
    [dead] = [r for r in old_over if r["status"] == "dead"]
    app = FastAPI()
    app.include_router(notifications_router(lambda: pool, lambda: jobs, settings.api_token_secret))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"Authorization": f"Bearer {OPERATIONS_TOKEN}"},
    ) as http:
        retried = await http.post(f"/deliveries/{dead['delivery_id']}/retry")
        assert retried.status_code == 409
        log = (await http.get("/deliveries", params={"status": "dead"})).json()
        assert [d["redacted_at"] is not None for d in log] == [True]
    assert (
        await pool.fetchval(
            "SELECT status FROM deliveries WHERE delivery_id = $1", dead["delivery_id"]
        )
        == "dead"
    )


async def test_device_days_and_job_runs_older_than_the_period_are_removed(
    pool: asyncpg.Pool, settings: NotificationsSettings
) -> None:
    device = uuid.uuid4()
    today = local_day(NOW)
    days = [today - timedelta(days=n) for n in (0, 7, 179, 181, 200, 400)]
    await pool.executemany(
        "INSERT INTO device_days (device_id, day) VALUES ($1, $2)", [(device, d) for d in days]
    )
    await pool.execute(
        "INSERT INTO job_runs (job, period, ran_at) VALUES ('unused-cards', 'old', $1),"
        " ('unused-cards', 'recent', $2)",
        NOW - timedelta(days=200),
        NOW - timedelta(days=2),
    )
    jobs = Jobs(pool, settings.model_copy(update={"retention_batch": 1}))
    result = await jobs.run("retention", NOW)
    assert result["device_days_removed"] == 3
    kept = [r["day"] for r in await pool.fetch("SELECT day FROM device_days ORDER BY day DESC")]
    assert kept == days[:3]
    periods = {r["period"] for r in await pool.fetch("SELECT period FROM job_runs")}
    assert periods == {"recent"}


async def test_the_scheduler_runs_retention_once_a_day(
    pool: asyncpg.Pool, settings: NotificationsSettings
) -> None:
    scheduler = Scheduler(pool, Jobs(pool, settings), 300, 7)
    assert "retention" in await scheduler.tick(NOW)
    assert "retention" not in await scheduler.tick(NOW + timedelta(minutes=5))
    assert await pool.fetchval("SELECT count(*) FROM job_runs WHERE job = 'retention'") == 1


async def test_letter_pdfs_of_batches_printed_before_the_period_are_removed(
    feed: Feed, jobs: Jobs, keys: tuple[str, str]
) -> None:
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(organisation(org), holder(person, org, keys[1], email=None, channel="letter"))
    await feed(approved(person))
    old = await jobs.run("letters", NOW - OLD)
    await feed(approved(person))
    within = await jobs.run("letters", NOW - timedelta(days=179))
    assert old["letters"] == within["letters"] == 1
    folder = jobs.settings.letters_dir
    # A batch whose writing was cut short, and files in the folder that are not the job's.
    old_day = local_day(NOW - OLD).isoformat()
    cut_short = folder / f"brieven-{old_day}-0123456789ab.tmp"
    not_the_jobs = [
        folder / "adressenlijst-2020.pdf",
        folder / f"brieven-{old_day}-kopie.pdf",
        folder / f"brieven-{old_day}-0123456789ab.pdf.bak",
        folder / "archief" / f"brieven-{old_day}-0123456789ab.pdf",
    ]
    for path in [cut_short, *not_the_jobs]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"%PDF-")

    before = _files(folder)
    assert {Path(old["file"]).name, Path(within["file"]).name} < before

    result = await jobs.run("retention", NOW)
    assert result["letter_files_removed"] == 2
    assert _files(folder) == before - {Path(old["file"]).name, cut_short.name}
    assert (await jobs.run("retention", NOW))["letter_files_removed"] == 0


def _files(folder: Path) -> set[str]:
    """Every file under `folder`, by its path relative to it."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
