"""The daily job: cards whose holder's eligibility ended (grace included) expire, and
referrers are told about grants that end within the announcement window, in one
transaction, which also deletes the idempotency keys older than 24 hours. Running it twice
a day changes nothing: expired cards are no longer live and announcements are recorded per
end date."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg

from services.cards.desk.cards import apply_action
from services.cards.desk.unit import Desk, unit_of_work
from services.cards.domain.access import Principal, Role
from services.cards.domain.idempotency import RETENTION
from services.cards.domain.lifecycle import CardAction
from services.cards.repository import eligibilities, idempotency
from shared import localtime
from shared.events import cards as ev
from shared.ids import uuid7
from shared.logging import get_logger

log = get_logger(__name__)
EXPIRY_JOB = Principal(label="expiry-job", role=Role.OPERATOR)


@dataclass(frozen=True)
class ExpiryReport:
    expired: int
    announced: int


async def run_expiry(pool: asyncpg.Pool, desk: Desk, today: date) -> ExpiryReport:
    correlation_id = str(uuid7())
    expired = 0
    async with unit_of_work(pool, desk, EXPIRY_JOB, correlation_id) as unit:
        for card in await eligibilities.live_cards_past_grace(unit.conn, today):
            await apply_action(
                unit,
                card,
                CardAction.EXPIRE,
                ev.CardStatusReason.ELIGIBILITY_ENDED,
                f"eligibility ended on {card['eligible_until'].isoformat()}",
            )
            expired += 1
        horizon = today + timedelta(days=desk.settings.announce_ending_days)
        announced = 0
        for grant in await eligibilities.ending_unannounced(unit.conn, today, horizon):
            # Two runs at once (the loop and an operator, two replicas) may both read a grant
            # as unannounced: only the one that records the announcement tells the referrer.
            if not await eligibilities.mark_announced(
                unit.conn, grant["eligibility_id"], grant["eligible_until"]
            ):
                continue
            announced += 1
            await unit.publish(
                ev.EligibilityEndingSoon(
                    holder_id=grant["person_id"],
                    referrer_org_id=grant["referrer_org_id"],
                    target_group=grant["target_group"],
                    eligible_until=grant["eligible_until"],
                    grace_days=grant["grace_days"],
                    announced_at=datetime.now(UTC),
                )
            )
        # The replies kept for retried requests: a key older than a day is ignored already,
        # this keeps the table to about a day's keys.
        forgotten = await idempotency.forget_expired(unit.conn, RETENTION)
        await unit.audit(
            "job.expiry", "job", today.isoformat(), f"{expired} expired, {announced} announced"
        )
    log.info(
        "expiry job done",
        day=today.isoformat(),
        expired=expired,
        announced=announced,
        idempotency_keys_forgotten=forgotten,
    )
    return ExpiryReport(expired, announced)


# After local midnight, not on it: a referrer's grant ends at the end of its last day, and
# a minute of margin keeps a clock a little behind from still seeing yesterday.
AFTER_MIDNIGHT = timedelta(minutes=1)


async def expiry_loop(pool: asyncpg.Pool, desk: Desk, stop: asyncio.Event) -> None:
    """Runs at start-up, then just after each local midnight (and at least every interval);
    a failure of any kind is logged and retried at the next run, never ends the loop."""
    while not stop.is_set():
        try:
            await run_expiry(pool, desk, localtime.today())
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("expiry job failed; will retry", error=type(exc).__name__)
        except Exception:
            log.exception("expiry job failed; will retry")
        wait = localtime.until_next_day(datetime.now(UTC), AFTER_MIDNIGHT).total_seconds()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), min(wait, desk.settings.expiry_job_interval_s))
