"""Finance hears when a budget line nears its limit: claims counts its ledger against its
budgets and publishes BudgetThresholdCrossed (tests/integration/claims/test_budget_watch.py);
notifications, taking claims' outbox rows as the broker would hand them over, tells finance
once, naming the line in words."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from services.notifications.delivery import DeliveryWorker
from shared.events import cards as ev
from shared.events.claims import BudgetThresholdCrossed
from tests.integration.claims.budget_ledger import budget_year, open_ledger
from tests.integration.notifications.conftest import (
    NOW,
    Feed,
    drain,
    mails,
    organisation,
    text_of,
)
from tests.support.components import Infra
from vtp.devstack.smtp import SmtpSink

pytestmark = pytest.mark.integration


async def test_claims_budget_alert_becomes_one_mail_to_finance(
    infra: Infra, feed: Feed, worker: DeliveryWorker, pool: asyncpg.Pool, smtp: SmtpSink
) -> None:
    claims = await open_ledger(await infra.new_database())
    try:
        await claims.approve(4)  # € 90,00 of the poverty line's € 100,00
        await claims.watch()
        [record] = await claims.records()
    finally:
        await claims.pool.close()

    await feed.processor.process([record, record])  # delivered twice in one batch
    await feed.processor.process([record])  # and again after a rebalance
    await drain(worker, pool)

    [mail] = mails(smtp)
    assert mail["To"] == "financien@example.org"  # no finance organisation: the fallback
    assert mail["Subject"] == "Vrijetijdspas: budgetlijn kansentarief heeft 80% bereikt"
    body = text_of(mail)
    assert (
        f"Van het budget voor kansentarief in budgetjaar {budget_year()} is € 90,00 besteed"
        " van € 100,00: de grens van 80% is bereikt." in body
    )
    assert "poverty" not in body


async def test_the_same_crossing_published_again_is_not_told_again(
    feed: Feed, pool: asyncpg.Pool
) -> None:
    """A registered finance department is told instead of the fallback address; the same
    line, year and threshold under another event id (published again) tells it nothing."""
    finance = uuid.uuid4()
    await feed(
        organisation(finance, email="boekhouding@example.org", kind=ev.OrganisationKind.FINANCE)
    )
    crossed = BudgetThresholdCrossed(
        budget_line="disability",
        budget_year=2026,
        percent=100,
        consumed_cents=1_000_000,
        budget_cents=1_000_000,
        crossed_at=NOW,
    )
    await feed(crossed)
    await feed(crossed)
    rows = await pool.fetch("SELECT recipient, subject FROM deliveries")
    assert [tuple(r) for r in rows] == [
        (
            f"org:{finance}",
            "Vrijetijdspas: budgetlijn personen met een beperking heeft 100% bereikt",
        )
    ]
