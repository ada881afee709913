"""Follow-ups of the notifications service on a real database, SMTP server and broker:
the cards service's eligibility-ending notice (one message whichever path sees it first),
a reversed claim told to the card holder, specific rejection texts, and dead deliveries
announced to operators on `ops.notification-dead.v1` in the transaction that kills them."""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.notifications.api import notifications_router
from services.notifications.delivery import DeliveryWorker
from services.notifications.jobs import Jobs
from services.notifications.messages import local_day
from services.notifications.settings import NotificationsSettings
from shared.events import cards as ev
from shared.events.claims import (
    ClaimApproved,
    ClaimRejected,
    ClaimReversed,
    PayeeKind,
    RejectionReason,
    ReversalReason,
)
from shared.events.notifications import NotificationDeadLettered
from shared.kafka import KafkaSender, make_producer
from shared.relay import OutboxRelay
from shared.topics import NOTIFICATION_DEAD
from tests.integration.notifications.conftest import (
    NOW,
    OPERATIONS_TOKEN,
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
from tests.support.components import Infra
from tests.support.kafka import header, read_topic
from vtp.devstack.processes import free_port
from vtp.devstack.smtp import SmtpSink

pytestmark = pytest.mark.integration

UNTIL = local_day(NOW) + timedelta(days=12)


def ending_soon(holder_id: uuid.UUID, referrer: uuid.UUID, until: date = UNTIL) -> Any:
    return ev.EligibilityEndingSoon(
        holder_id=holder_id,
        referrer_org_id=referrer,
        target_group="poverty",
        eligible_until=until,
        grace_days=30,
        announced_at=NOW,
    )


async def ending_rows(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT recipient, status, batch, body FROM deliveries"
            " WHERE kind = 'eligibility_ending'"
        )
    )


async def _referrer_with_card(feed: Feed, keys: tuple[str, str]) -> tuple[uuid.UUID, uuid.UUID]:
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(organisation(org, email="ocmw@example.org"), holder(person, org, keys[1]))
    await feed(card(person, org, "1234567890128", until=UNTIL))
    return org, person


async def test_cards_notice_first_then_the_scan_tells_the_referrer_once(
    feed: Feed,
    jobs: Jobs,
    worker: DeliveryWorker,
    pool: asyncpg.Pool,
    smtp: SmtpSink,
    keys: tuple[str, str],
) -> None:
    org, person = await _referrer_with_card(feed, keys)
    # The daily job of the cards service may announce more than once (a re-run, a resend):
    # each is a new event id, but the notice is about one grant and one end date.
    await feed(ending_soon(person, org))
    await feed(ending_soon(person, org))
    assert (await jobs.run("eligibility-ending", NOW))["notifications"] == 0
    [row] = await ending_rows(pool)
    assert row["recipient"] == f"org:{org}"
    assert (row["status"], row["batch"]) == ("scheduled", "digest")
    assert f"kaart 1234567890128 eindigt op {UNTIL:%d/%m/%Y}" in row["body"]

    await jobs.run("referrer-digests", NOW)
    await drain(worker, pool)
    [digest] = mails(smtp)
    assert text_of(digest).count("recht op kansentarief eindigt op") == 1


async def test_a_grant_renewed_before_its_end_is_not_announced_as_ending(
    feed: Feed, jobs: Jobs, pool: asyncpg.Pool, keys: tuple[str, str]
) -> None:
    """Renewed early, in another target group: the old grant's end is no news."""
    org, person = await _referrer_with_card(feed, keys)
    await feed(
        ev.EligibilityChanged(
            holder_id=person,
            target_group="senior",
            eligible_from=UNTIL + timedelta(days=1),
            eligible_until=UNTIL + timedelta(days=365),
            grace_days=0,
            referrer_org_id=org,
            changed_at=NOW,
        )
    )
    assert (await jobs.run("eligibility-ending", NOW))["notifications"] == 0
    assert await ending_rows(pool) == []


async def test_scan_first_then_the_cards_notice_tells_nobody_again(
    feed: Feed, jobs: Jobs, pool: asyncpg.Pool, keys: tuple[str, str]
) -> None:
    org, person = await _referrer_with_card(feed, keys)
    assert (await jobs.run("eligibility-ending", NOW))["notifications"] == 1
    await feed(ending_soon(person, org))
    assert len(await ending_rows(pool)) == 1
    # An extension that ends again is a new end date: the referrer hears about it.
    later = UNTIL + timedelta(days=20)
    await feed(ending_soon(person, org, later))
    bodies = sorted(r["body"] for r in await ending_rows(pool))
    assert len(bodies) == 2 and any(f"eindigt op {later:%d/%m/%Y}" in b for b in bodies)


async def test_reversed_claim_is_told_to_the_card_holder_in_dutch(
    feed: Feed,
    worker: DeliveryWorker,
    pool: asyncpg.Pool,
    smtp: SmtpSink,
    keys: tuple[str, str],
) -> None:
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(organisation(org, email="ocmw@example.org"), holder(person, org, keys[1]))
    claim = approved(person, amount_cents=1250)
    await feed(
        ev.ProviderRegistered(
            provider_id=claim.provider_id,
            name="Cultuurcentrum Zwaneberg",
            sub_municipality="Heist-Centrum",
        ),
        claim,
    )
    reversal = ClaimReversed(
        claim_id=claim.claim_id,
        checkin_id=claim.checkin_id,
        holder_id=person,
        provider_id=claim.provider_id,
        amount_cents=1250,
        reason=ReversalReason.ACTIVITY_CANCELLED,
        reversed_at=NOW,
    )
    record = feed.record(reversal)
    await feed.processor.process([record, record])
    await feed.processor.process([record])
    await drain(worker, pool)
    told = {m["Subject"]: m for m in mails(smtp)}
    assert set(told) == {
        "Vrijetijdspas: u krijgt € 12,50 terug",
        "Vrijetijdspas: terugbetaling van € 12,50 geannuleerd",
    }
    reversed_mail = told["Vrijetijdspas: terugbetaling van € 12,50 geannuleerd"]
    assert reversed_mail["To"] == "an@example.org"
    body = text_of(reversed_mail)
    assert body.startswith("Beste An Peeters,")
    assert (
        f"Op {local_day(NOW):%d/%m/%Y} heeft Cultuurcentrum Zwaneberg uw deelname aan een"
        " activiteit geannuleerd (de activiteit ging niet door). De terugbetaling van € 12,50"
        " voor die activiteit gaat daarom niet door." in body
    )
    assert "activity_cancelled" not in body  # the code, said in words
    # Budget lines are counted by claims, from its ledger (reversals included): neither the
    # approval nor its reversal is counted here, nor tells finance anything.
    assert await _budget_bookkeeping(pool) == (0, 0)


async def test_a_reversal_that_overtakes_its_approval_leaves_no_refund_announced(
    feed: Feed, worker: DeliveryWorker, pool: asyncpg.Pool, smtp: SmtpSink, keys: tuple[str, str]
) -> None:
    # Approvals are keyed by card, reversals by holder: after a backlog the reversal can
    # be consumed first. The holder must not hear "you get € 12,50 back" after "cancelled".
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(organisation(org, email="ocmw@example.org"), holder(person, org, keys[1]))
    claim = approved(person, amount_cents=1250)
    await feed(
        ClaimReversed(
            claim_id=claim.claim_id,
            checkin_id=claim.checkin_id,
            holder_id=person,
            provider_id=claim.provider_id,
            amount_cents=1250,
            reason=ReversalReason.OTHER,
            reversed_at=NOW,
        )
    )
    await feed(claim)
    await drain(worker, pool)
    assert [m["Subject"] for m in mails(smtp)] == [
        "Vrijetijdspas: terugbetaling van € 12,50 geannuleerd"
    ]
    row = await pool.fetchrow("SELECT approved, reversed FROM checkins")
    assert row is not None
    assert (row["approved"], row["reversed"]) == (True, True)
    assert await _budget_bookkeeping(pool) == (0, 0)


async def _budget_bookkeeping(pool: asyncpg.Pool) -> tuple[int, int]:
    """(rows of the old budget_spend table, finance notifications about budgets)."""
    return (
        await pool.fetchval("SELECT count(*) FROM budget_spend"),
        await pool.fetchval("SELECT count(*) FROM deliveries WHERE kind = 'budget_threshold'"),
    )


def _reversal_of(claim: ClaimApproved, *, names_payee: bool = False) -> ClaimReversed:
    """The reversal claims publishes; without `names_payee`, as published before the event
    named whom the approval paid."""
    return ClaimReversed(
        claim_id=claim.claim_id,
        checkin_id=claim.checkin_id,
        holder_id=claim.holder_id,
        provider_id=claim.provider_id,
        amount_cents=claim.amount_cents,
        reason=ReversalReason.DID_NOT_ATTEND,
        reversed_at=NOW,
        payee_kind=claim.payee_kind if names_payee else None,
    )


@pytest.mark.parametrize(
    "reversals_first",
    [False, True],
    ids=["after-the-approvals-as-published-before-naming-the-payee", "before-the-approvals"],
)
async def test_a_cancelled_till_discount_is_not_told_as_a_cancelled_refund(
    feed: Feed,
    worker: DeliveryWorker,
    pool: asyncpg.Pool,
    smtp: SmtpSink,
    keys: tuple[str, str],
    reversals_first: bool,
) -> None:
    # The holder who had the discount at the till was paid nothing and owes nothing: no
    # "deducted from your next refund". A refund's cancellation keeps its own text. A
    # reversal that overtakes its approval (reversals are keyed by holder, approvals by
    # card) says itself whom the approval paid; an older one is known by its approval.
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(organisation(org, email="ocmw@example.org"), holder(person, org, keys[1]))
    at_till = approved(person, 400).model_copy(update={"payee_kind": PayeeKind.PROVIDER})
    refund = approved(person, 700)
    approvals = [at_till, refund]
    reversals = [_reversal_of(c, names_payee=reversals_first) for c in approvals]
    for events in (reversals, approvals) if reversals_first else (approvals, reversals):
        await feed(*events)
    await drain(worker, pool)
    kinds = await pool.fetch(
        "SELECT kind, payload->>'claim_id' AS claim, payload->>'reason' AS reason"
        " FROM deliveries WHERE kind LIKE '%reversed'"
    )
    assert {(r["kind"], r["claim"], r["reason"]) for r in kinds} == {
        ("till_discount_reversed", str(at_till.claim_id), "did_not_attend"),
        ("refund_reversed", str(refund.claim_id), "did_not_attend"),
    }
    told = {m["Subject"]: text_of(m) for m in mails(smtp)}
    till = told["Vrijetijdspas: korting van € 4,00 aan de kassa geannuleerd"]
    assert till.startswith("Beste An Peeters,")
    assert "uw deelname aan een activiteit geannuleerd (u nam uiteindelijk niet deel)." in till
    assert (
        "De korting van € 4,00 die u daarvoor aan de kassa kreeg, vervalt daarom. U hoeft"
        " niets te doen en niets terug te betalen." in till
    )
    assert "terugbetaling" not in till and "rekening" not in till
    assert "trekken we het af" in told["Vrijetijdspas: terugbetaling van € 7,00 geannuleerd"]
    # An approval that arrives after its cancellation is not announced.
    assert len(told) == (2 if reversals_first else 4)


def rejected(
    holder_id: uuid.UUID,
    reason: RejectionReason,
    detail: str,
    payee_kind: PayeeKind | None = None,
) -> ClaimRejected:
    return ClaimRejected(
        claim_id=uuid.uuid4(),
        checkin_id=uuid.uuid4(),
        card_id=uuid.uuid4(),
        holder_id=holder_id,
        provider_id=uuid.uuid4(),
        activity_id="zwemmen",
        reason=reason,
        detail=detail,
        occurred_at=NOW,
        decided_at=NOW,
        payee_kind=payee_kind,
    )


async def test_a_holder_with_a_discount_at_the_till_hears_it_is_not_covered_not_no_refund(
    feed: Feed,
    worker: DeliveryWorker,
    pool: asyncpg.Pool,
    smtp: SmtpSink,
    keys: tuple[str, str],
) -> None:
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(organisation(org, email="ocmw@example.org"), holder(person, org, keys[1]))
    await feed(rejected(person, RejectionReason.CARD_EXPIRED, "", PayeeKind.PROVIDER))
    await drain(worker, pool)
    [mail] = mails(smtp)
    assert mail["Subject"].endswith("wordt niet vergoed")
    body = text_of(mail)
    assert "kreeg u bij" in body and "aan de kassa korting" in body
    assert "terugbetaald" not in body


async def test_frequency_and_cancellation_rejections_say_what_happened(
    feed: Feed,
    worker: DeliveryWorker,
    pool: asyncpg.Pool,
    smtp: SmtpSink,
    keys: tuple[str, str],
) -> None:
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(organisation(org, email="ocmw@example.org"), holder(person, org, keys[1]))
    await feed(
        rejected(person, RejectionReason.FREQUENCY_LIMIT, "at most 2 per provider per week"),
        rejected(person, RejectionReason.CHECKIN_CANCELLED, "cancelled by the provider: afgelast"),
    )
    await drain(worker, pool)
    bodies = sorted(text_of(m) for m in mails(smtp))
    assert len(bodies) == 2
    assert any(
        "omdat u bij deze aanbieder die week al 2 keer een terugbetaling kreeg; meer laat het"
        " reglement niet toe." in b
        for b in bodies
    )
    assert any(
        "omdat de aanbieder uw deelname aan deze activiteit heeft geannuleerd" in b
        and "afgelast" not in b
        for b in bodies
    )


async def dead_events(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    rows = await pool.fetch(
        "SELECT topic, key, payload FROM outbox WHERE topic = $1 ORDER BY seq",
        NOTIFICATION_DEAD.name,
    )
    return [{"key": bytes(r["key"]).decode(), **json.loads(r["payload"])} for r in rows]


async def test_a_refused_webhook_is_announced_dead_without_addresses(
    feed: Feed,
    worker: DeliveryWorker,
    pool: asyncpg.Pool,
    receiver: WebhookReceiver,
    keys: tuple[str, str],
) -> None:
    org, person = uuid.uuid4(), uuid.uuid4()
    url = receiver.expect("/gone?token=s3cret", f"org:{org}", [410])
    await feed(organisation(org, webhook=url), holder(person, org, keys[1]))
    await feed(payment_requested(person))
    await drain(worker, pool)
    dead = await pool.fetchrow("SELECT delivery_id, correlation_id FROM deliveries")
    assert dead is not None
    [event] = await dead_events(pool)
    assert event["key"] == f"org:{org}"  # one party's failures on one partition
    parsed = NotificationDeadLettered.model_validate({k: v for k, v in event.items() if k != "key"})
    assert parsed.delivery_id == dead["delivery_id"]
    assert (parsed.kind, parsed.recipient, parsed.channel) == (
        "payment_requested",
        f"org:{org}",
        "webhook",
    )
    assert parsed.attempts == 1 and parsed.reason.startswith("HTTP 410")
    raw = json.dumps(event)
    for secret in ("s3cret", "127.0.0.1", "OCMW Heist", "Peeters", "an@example.org"):
        assert secret not in raw
    # Nothing else died, and a pass over a dead row announces nothing again.
    await worker.deliver_due()
    assert len(await dead_events(pool)) == 1


async def test_exhausted_retries_and_an_operator_retry_are_each_announced(
    feed: Feed, pool: asyncpg.Pool, settings: NotificationsSettings, keys: tuple[str, str]
) -> None:
    # An SMTP server that never answers: every attempt is transient until they run out.
    worker = DeliveryWorker(pool, settings.model_copy(update={"smtp_port": free_port()}))
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(organisation(org, email="ocmw@example.org"), holder(person, org, keys[1]))
    await feed(approved(person), approved(person))  # two refunds for the same holder
    await drain(worker, pool)
    rows = await pool.fetch(
        "SELECT delivery_id, status, attempts FROM deliveries WHERE channel = 'email'"
    )
    assert {(r["status"], r["attempts"]) for r in rows} == {("dead", settings.max_attempts)}
    # The holder gets each message by letter instead (test_email_refused.py).
    letters = "SELECT count(*) FROM deliveries WHERE channel = 'letter'"
    assert await pool.fetchval(letters) == 2
    events = await dead_events(pool)
    assert sorted(e["delivery_id"] for e in events) == sorted(str(r["delivery_id"]) for r in rows)
    for event in events:
        assert event["key"] == f"holder:{person}" == event["recipient"]
        assert event["reason"].startswith(f"gave up after {settings.max_attempts} attempts")
        assert "an@example.org" not in json.dumps(event) and "Peeters" not in json.dumps(event)

    # An operator retries one after "fixing" nothing: it dies again and is announced again.
    app = FastAPI()
    app.include_router(
        notifications_router(
            lambda: pool, lambda: Jobs(pool, settings), settings.api_token_secret, keys[0]
        )
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://n",
        headers={"Authorization": f"Bearer {OPERATIONS_TOKEN}"},
    ) as api:
        retried = await api.post(f"/deliveries/{rows[0]['delivery_id']}/retry")
        assert retried.status_code == 200, retried.text
    await drain(worker, pool)
    again = await dead_events(pool)
    assert len(again) == 3
    assert again[-1]["delivery_id"] == str(rows[0]["delivery_id"])
    assert await pool.fetchval(letters) == 2  # not a second letter for the same message


async def test_dead_and_announced_together_or_not_at_all(
    feed: Feed,
    worker: DeliveryWorker,
    pool: asyncpg.Pool,
    receiver: WebhookReceiver,
    keys: tuple[str, str],
) -> None:
    org, person = uuid.uuid4(), uuid.uuid4()
    url = receiver.expect("/gone", f"org:{org}", [410])
    await feed(organisation(org, webhook=url), holder(person, org, keys[1]))
    await feed(payment_requested(person))
    # The outbox refuses this topic for a moment: recording the death fails as a whole.
    await pool.execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'outbox unavailable'; END $$;"
        " CREATE TRIGGER refuse BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION refuse()"
    )
    with pytest.raises(asyncpg.RaiseError):
        await worker.deliver_due()
    assert await pool.fetchval("SELECT status FROM deliveries") == "pending"
    assert await dead_events(pool) == []
    # Back to normal: the lease runs out, the webhook is asked again, and both happen.
    await pool.execute("DROP TRIGGER refuse ON outbox")
    await pool.execute("UPDATE deliveries SET next_attempt_at = now()")
    await drain(worker, pool)
    assert await pool.fetchval("SELECT status FROM deliveries") == "dead"
    assert len(await dead_events(pool)) == 1


async def test_the_relay_puts_the_dead_letter_on_its_topic(
    infra: Infra,
    topics_ready: None,
    feed: Feed,
    worker: DeliveryWorker,
    pool: asyncpg.Pool,
    keys: tuple[str, str],
) -> None:
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(organisation(org, email="not an address"), holder(person, org, keys[1]))
    await feed(payment_requested(person))
    await drain(worker, pool)
    delivery_id = str(await pool.fetchval("SELECT delivery_id FROM deliveries"))
    producer = make_producer(infra.bootstrap_servers, client_id="test-notifications-relay")
    await producer.start()
    try:
        assert await OutboxRelay(pool, KafkaSender(producer)).publish_pending() == 1
    finally:
        await producer.stop()
    records = [
        r
        for r in await read_topic(infra.bootstrap_servers, NOTIFICATION_DEAD.name, idle_s=1)
        if json.loads(r.value)["delivery_id"] == delivery_id
    ]
    [record] = records
    assert header(record, "ce_type") == NOTIFICATION_DEAD.event_type
    assert header(record, "ce_subject") == delivery_id
    assert record.key == f"org:{org}".encode()
    assert json.loads(record.value)["reason"].startswith("invalid address")
