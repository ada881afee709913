"""The daily job run twice at the same time (the loop and an operator's POST /jobs/expiry,
or two replicas of the service): a referrer is told once that a grant ends soon."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import asyncpg

from services.cards.desk import unit
from services.cards.desk.expiry import run_expiry
from services.cards.personal_data import PersonalDataVault
from services.cards.repository import eligibilities
from shared import localtime
from tests.integration.cards.conftest import Desk, new_holder

ENDING_SOON = "cards.eligibility-ending-soon.v1"


async def _until_a_statement_waits_for_a_lock(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        for _ in range(500):
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if waiting:
                return
            await asyncio.sleep(0.01)
    raise AssertionError("the second job never waited for the first one's announcement")


async def test_two_jobs_at_once_announce_an_ending_grant_once(desk: Desk) -> None:
    today = localtime.today()
    until = today + timedelta(days=20)
    ending = await new_holder(desk.referrer, 71, eligible_until=until.isoformat(), grace_days=5)
    job_desk = unit.Desk(desk.settings, PersonalDataVault(desk.settings.master_key))
    async with desk.pool.acquire() as first_job:
        # The first job has recorded its announcement (and enqueued its event) but not yet
        # committed when the second job reads which grants are still unannounced.
        transaction = first_job.transaction()
        await transaction.start()
        await eligibilities.mark_announced(first_job, uuid.UUID(ending["eligibility_id"]), until)
        second_job = asyncio.create_task(run_expiry(desk.pool, job_desk, today))
        await _until_a_statement_waits_for_a_lock(desk.pool)
        await transaction.commit()
        report = await second_job
    assert report.announced == 0
    assert await desk.outbox(ENDING_SOON) == []  # the first job's event is its own
