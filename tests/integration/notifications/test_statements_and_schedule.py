"""Provider statements and the scheduler on a real PostgreSQL: a statement never tells a
refund-mode provider who had a discount; every check-in is in exactly one statement, also
one that arrives late; and a scheduled job's period is done exactly when its work is."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from services.notifications.jobs import Jobs, NotYet
from services.notifications.messages import local_day
from services.notifications.schedule import Scheduler, due_jobs
from services.notifications.settings import NotificationsSettings
from shared.db import DbConnection, create_pool, migrate_service
from shared.events import cards as ev
from shared.events.checkins import ActivityCategory
from shared.events.claims import ClaimApproved, ClaimRejected, PayeeKind, RejectionReason
from tests.integration.notifications.conftest import MIGRATIONS, NOW, Feed

pytestmark = pytest.mark.integration

# Moments in Brussels summer time (UTC+2).
MAY_STATEMENT_AT = datetime(2025, 5, 31, 22, 5, tzinfo=UTC)  # 1 June, 00:05
JUNE_STATEMENT_AT = datetime(2025, 6, 30, 22, 5, tzinfo=UTC)  # 1 July, 00:05
TICK = datetime(2025, 6, 1, 10, tzinfo=UTC)  # 1 June, 12:00: every job is due
ALL_JOBS = [job for job, _ in due_jobs(TICK, 7)]


def provider(
    provider_id: uuid.UUID, mode: ev.ProviderMode = ev.ProviderMode.REFUND
) -> ev.ProviderRegistered:
    return ev.ProviderRegistered(
        provider_id=provider_id,
        name="Sportdienst Heist",
        sub_municipality="Heist-Centrum",
        mode=mode,
        contact_email="sport@example.org",
    )


def approved(
    provider_id: uuid.UUID,
    at: datetime,
    amount: int = 900,
    *,
    till: bool = False,
    own_share: int = 0,
) -> ClaimApproved:
    return ClaimApproved(
        claim_id=uuid.uuid4(),
        checkin_id=uuid.uuid4(),
        card_id=uuid.uuid4(),
        holder_id=uuid.uuid4(),
        provider_id=provider_id,
        activity_id="zwemmen",
        category=ActivityCategory.SPORT,
        target_group="poverty",
        price_cents=1200,
        amount_cents=amount,
        capped=False,
        payee_kind=PayeeKind.PROVIDER if till else PayeeKind.CARD_HOLDER,
        occurred_at=at,
        decided_at=at,
        own_share_cents=own_share,
    )


def rejected(provider_id: uuid.UUID, at: datetime) -> ClaimRejected:
    return ClaimRejected(
        claim_id=uuid.uuid4(),
        checkin_id=uuid.uuid4(),
        card_id=uuid.uuid4(),
        holder_id=uuid.uuid4(),
        provider_id=provider_id,
        activity_id="zwemmen",
        reason=RejectionReason.NOT_ELIGIBLE,
        detail="no eligibility on that day",
        occurred_at=at,
        decided_at=at,
    )


async def arrive(
    feed: Feed, pool: asyncpg.Pool, at: datetime, *claims: ClaimApproved | ClaimRejected
) -> None:
    """Decided check-ins that reach this service at `at`."""
    await feed(*claims)
    await pool.execute(
        "UPDATE checkins SET recorded_at = $2 WHERE claim_id = ANY($1::uuid[])",
        [c.claim_id for c in claims],
        at,
    )


async def statements(pool: asyncpg.Pool) -> dict[tuple[uuid.UUID, str], asyncpg.Record]:
    """The statements queued, by (provider, subject)."""
    rows = await pool.fetch(
        "SELECT recipient, subject, body, payload::text AS payload FROM deliveries"
        " WHERE kind = 'provider_statement'"
    )
    return {(uuid.UUID(r["recipient"].removeprefix("provider:")), r["subject"]): r for r in rows}


async def test_a_refund_mode_statement_is_the_same_whoever_had_a_discount(
    feed: Feed, jobs: Jobs, pool: asyncpg.Pool
) -> None:
    everyone, nobody, some, till = (uuid.uuid4() for _ in range(4))
    await feed(*(provider(p) for p in (everyone, nobody, some)))
    await feed(provider(till, ev.ProviderMode.TILL_DISCOUNT))
    may = datetime(2025, 5, 20, 10, tzinfo=UTC)
    await arrive(
        feed,
        pool,
        may,
        approved(everyone, may),  # one check-in: a share "with discount" would say 100 %
        rejected(nobody, may),
        approved(some, may),
        rejected(some, may),
        approved(some, may, 600),
        approved(till, may, 900, till=True, own_share=200),
        approved(till, may, 400, till=True),
        rejected(till, may),
    )
    await feed(approved(everyone, may))  # arrived today: not in May's statement
    # The case the reviewer found: one check-in, € 12,00 paid, € 9,00 discount (75 %).
    assert (await jobs.run("provider-statements", MAY_STATEMENT_AT))["notifications"] == 4
    sent = {p: r for (p, _), r in (await statements(pool)).items()}
    assert {r["subject"] for r in sent.values()} == {"Vrijetijdspas: overzicht van mei 2025"}
    assert (
        "Uw toestellen stuurden ons in mei 2025 1 scan van de vrijetijdspas."
        in (sent[everyone]["body"])
    )
    # Refund mode: what the provider's own devices know (how many scans), nothing about
    # approvals, rejections or discounts, so the same text for the same number of scans.
    assert sent[everyone]["body"] == sent[nobody]["body"]
    for p in (everyone, nobody, some):
        body, payload = sent[p]["body"], json.loads(sent[p]["payload"])
        assert "€" not in body and "met korting" not in body
        assert "zegt niet wie korting krijgt" in body
        assert set(payload) == {"period_from", "period_to", "checkins", "late_checkins"}
    assert json.loads(sent[everyone]["payload"]) == json.loads(sent[nobody]["payload"])
    assert json.loads(sent[some]["payload"])["checkins"] == 3
    # Till-discount mode: the provider gave the discounts at its till; it hears what it is
    # reimbursed for them (less its own share of one of them, as it is paid), and no name.
    body, payload = sent[till]["body"], json.loads(sent[till]["payload"])
    assert "Uw toestellen stuurden ons in mei 2025 3 scans van de vrijetijdspas." in body
    assert (
        "betalen wij u € 11,00 terug (2 kortingen). Uw eigen aandeel in die kortingen,"
        " € 2,00, is daar al van afgetrokken." in body
    )
    assert payload["till_discounts"] == 2 and payload["reimbursed_cents"] == 1100
    assert payload["own_share_cents"] == 200
    assert "Dit overzicht bevat bewust geen namen." in body


async def test_a_late_check_in_is_in_the_statement_of_the_month_it_arrived_in(
    feed: Feed, jobs: Jobs, pool: asyncpg.Pool
) -> None:
    prov = uuid.uuid4()
    await feed(provider(prov))
    in_time = approved(prov, datetime(2025, 5, 20, 10, tzinfo=UTC))
    await arrive(feed, pool, datetime(2025, 5, 20, 10, 0, 5, tzinfo=UTC), in_time)
    await jobs.run("provider-statements", MAY_STATEMENT_AT)
    # 31 May, 23:30 in Brussels, on a device that was offline: it reaches us on 2 June,
    # after May's statement went out. June's statement must count it.
    late = approved(prov, datetime(2025, 5, 31, 21, 30, tzinfo=UTC))
    await arrive(feed, pool, datetime(2025, 6, 2, 8, tzinfo=UTC), late)
    june = rejected(prov, datetime(2025, 6, 10, 9, tzinfo=UTC))
    await arrive(feed, pool, datetime(2025, 6, 10, 9, 0, 1, tzinfo=UTC), june)
    # May again (a rerun): nothing new, the late one is not May's.
    assert (await jobs.run("provider-statements", MAY_STATEMENT_AT))["notifications"] == 0
    await jobs.run("provider-statements", JUNE_STATEMENT_AT)

    sent = {subject: r for (_, subject), r in (await statements(pool)).items()}
    may_payload = json.loads(sent["Vrijetijdspas: overzicht van mei 2025"]["payload"])
    assert may_payload["checkins"] == 1
    june_statement = sent["Vrijetijdspas: overzicht van juni 2025"]
    assert json.loads(june_statement["payload"])["checkins"] == 2
    assert json.loads(june_statement["payload"])["late_checkins"] == 1
    assert (
        "Uw toestellen stuurden ons in juni 2025 2 scans van de vrijetijdspas. Daarvan was er"
        " 1 al van vóór 01/06/2025" in june_statement["body"]
    )


async def test_no_statement_for_a_period_that_is_not_over(
    feed: Feed, jobs: Jobs, pool: asyncpg.Pool
) -> None:
    prov = uuid.uuid4()
    await feed(provider(prov), approved(prov, NOW))
    today = local_day(NOW)
    with pytest.raises(NotYet):
        await jobs.run("provider-statements", NOW, (today.replace(day=1), today))
    assert await statements(pool) == {}


async def test_a_statement_waits_for_check_ins_still_being_written(
    feed: Feed, jobs: Jobs, pool: asyncpg.Pool
) -> None:
    """A check-in inserted before the period ended by a transaction that commits after the
    statement started is in that statement, not lost between two."""
    prov = uuid.uuid4()
    await feed(provider(prov))
    may = datetime(2025, 5, 3, tzinfo=UTC)
    await arrive(feed, pool, may, approved(prov, may))
    async with pool.acquire() as writer:
        writing = writer.transaction()
        await writing.start()
        await writer.execute(
            "INSERT INTO checkins (claim_id, provider_id, approved, occurred_at, recorded_at)"
            " VALUES ($1, $2, false, $3, $3)",
            uuid.uuid4(),
            prov,
            datetime(2025, 5, 31, 21, 59, 59, tzinfo=UTC),  # 23:59:59 in Brussels
        )
        statement = asyncio.create_task(jobs.run("provider-statements", MAY_STATEMENT_AT))
        waited = False
        for _ in range(200):
            waited = await pool.fetchval(
                "SELECT count(*) > 0 FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE 'LOCK TABLE checkins%'"
            )
            if waited or statement.done():
                break
            await asyncio.sleep(0.05)
        await writing.commit()
    await asyncio.wait_for(statement, 10)
    assert waited
    [sent] = (await statements(pool)).values()
    assert json.loads(sent["payload"])["checkins"] == 2


class Blocking(Jobs):
    """Jobs whose silent-device scan does its work, then waits to be released."""

    def __init__(self, pool: asyncpg.Pool, settings: NotificationsSettings) -> None:
        super().__init__(pool, settings)
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def silent_devices(self, conn: DbConnection, now: datetime, correlation_id: str) -> int:
        told = await super().silent_devices(conn, now, correlation_id)
        self.entered.set()
        await self.release.wait()
        return told


class FailingOnce(Jobs):
    def __init__(self, pool: asyncpg.Pool, settings: NotificationsSettings) -> None:
        super().__init__(pool, settings)
        self.failed = False

    async def unused_cards(self, conn: DbConnection, now: datetime, correlation_id: str) -> int:
        if not self.failed:
            self.failed = True
            raise RuntimeError("a bug")
        return await super().unused_cards(conn, now, correlation_id)


async def done(pool: asyncpg.Pool) -> list[str]:
    return [r["job"] for r in await pool.fetch("SELECT job FROM job_runs ORDER BY job")]


@contextlib.asynccontextmanager
async def blocked_tick(
    pool: asyncpg.Pool, settings: NotificationsSettings
) -> AsyncIterator[tuple[Blocking, asyncio.Task[list[str]]]]:
    """A scheduler tick held inside its first job (silent-devices), released at the end
    whatever happens, so that a failing test does not hold a connection forever."""
    blocking = Blocking(pool, settings)
    running = asyncio.create_task(Scheduler(pool, blocking, 300, 7).tick(TICK))
    try:
        await asyncio.wait_for(blocking.entered.wait(), 10)
        yield blocking, running
    finally:
        blocking.release.set()
        await asyncio.wait_for(asyncio.gather(running, return_exceptions=True), 10)


async def test_a_period_is_done_only_when_its_job_committed(
    pool: asyncpg.Pool, settings: NotificationsSettings
) -> None:
    async with blocked_tick(pool, settings) as (_, running):
        # Mid-job: if the process died now, nothing may say this period was done.
        assert await done(pool) == []
        running.cancel()  # the crash, as far as this process can tell
        with pytest.raises(asyncio.CancelledError):
            await running
    assert await done(pool) == []
    scheduler = Scheduler(pool, Jobs(pool, settings), 300, 7)
    assert await scheduler.tick(TICK) == ALL_JOBS  # the next tick runs the period again
    assert await done(pool) == sorted(ALL_JOBS)
    assert await scheduler.tick(TICK) == []


async def test_a_failed_job_is_retried_on_the_next_tick_and_the_others_run(
    pool: asyncpg.Pool, settings: NotificationsSettings
) -> None:
    scheduler = Scheduler(pool, FailingOnce(pool, settings), 300, 7)
    assert await scheduler.tick(TICK) == [j for j in ALL_JOBS if j != "unused-cards"]
    assert "unused-cards" not in await done(pool)
    assert await scheduler.tick(TICK) == ["unused-cards"]
    assert await done(pool) == sorted(ALL_JOBS)


async def test_a_second_replica_skips_a_period_being_run_without_waiting(
    pool: asyncpg.Pool, settings: NotificationsSettings
) -> None:
    async with blocked_tick(pool, settings) as (blocking, first):
        second = Scheduler(pool, Jobs(pool, settings), 300, 7)
        assert await asyncio.wait_for(second.tick(TICK), 10) == ALL_JOBS[1:]
        blocking.release.set()
        assert await asyncio.wait_for(first, 10) == ["silent-devices"]
    assert await done(pool) == sorted(ALL_JOBS)


async def test_0005_keeps_earlier_check_ins_in_the_statements_they_were_in(
    database: str, tmp_path: Path
) -> None:
    before = tmp_path / "migrations"
    before.mkdir()
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if path.name < "0005":
            shutil.copy(path, before / path.name)
    pool = await create_pool(database)
    try:
        await migrate_service(pool, before)
        occurred = datetime(2025, 5, 31, 21, 30, tzinfo=UTC)
        old = uuid.uuid4()
        insert = (
            "INSERT INTO checkins (claim_id, provider_id, approved, occurred_at)"
            " VALUES ($1, $2, true, $3)"
        )
        await pool.execute(insert, old, uuid.uuid4(), occurred)
        await migrate_service(pool, MIGRATIONS)
        # Reported by occurred_at before: it stays in May, not in the month of the upgrade.
        kept = await pool.fetchval("SELECT recorded_at FROM checkins WHERE claim_id = $1", old)
        assert kept == occurred
        new = uuid.uuid4()
        await pool.execute(insert, new, uuid.uuid4(), occurred)
        recorded = await pool.fetchval("SELECT recorded_at FROM checkins WHERE claim_id = $1", new)
        assert abs(recorded - datetime.now(UTC)) < timedelta(minutes=5)
    finally:
        await pool.close()


def test_periods_used_here_are_whole_months() -> None:
    assert local_day(MAY_STATEMENT_AT) == date(2025, 6, 1)
    assert local_day(JUNE_STATEMENT_AT) == date(2025, 7, 1)
