"""Who hears what: digests with the printable card, letters as a PDF batch, unused cards,
eligibility ending, silent devices, provider statements, finance, opt-outs, and the
delivery log over HTTP — on a real database and a real SMTP server."""

from __future__ import annotations

import io
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from pypdf import PdfReader

from services.notifications.api import notifications_router
from services.notifications.delivery import DeliveryWorker
from services.notifications.jobs import Jobs
from services.notifications.messages import local_day, period_words
from services.notifications.settings import NotificationsSettings
from services.notifications.signals import previous_month
from shared.checkin_signature import public_key_b64
from shared.events import cards as ev
from shared.events.checkins import ActivityCategory
from shared.events.claims import (
    BudgetThresholdCrossed,
    ClaimApproved,
    ClaimRejected,
    PayeeKind,
    RejectionReason,
)
from shared.events.payments import (
    PaymentFailed,
    PaymentRequested,
    PaymentRunCompleted,
    PaymentSettled,
)
from tests.integration.notifications.conftest import (
    NOW,
    OPERATIONS_TOKEN,
    Feed,
    card,
    drain,
    holder,
    mails,
    organisation,
    text_of,
)
from vtp.device.signer import DeviceIdentity
from vtp.devstack.smtp import SmtpSink

pytestmark = pytest.mark.integration


def provider(provider_id: uuid.UUID) -> ev.ProviderRegistered:
    return ev.ProviderRegistered(
        provider_id=provider_id,
        name="Sportdienst Heist",
        sub_municipality="Heist-Centrum",
        contact_email="sport@example.org",
    )


def budget_crossed(percent: int, consumed_cents: int) -> BudgetThresholdCrossed:
    return BudgetThresholdCrossed(
        budget_line="poverty",
        budget_year=local_day(NOW).year,
        percent=percent,
        consumed_cents=consumed_cents,
        budget_cents=10_000,
        crossed_at=NOW,
    )


def claim(
    holder_id: uuid.UUID,
    card_id: uuid.UUID,
    provider_id: uuid.UUID,
    amount: int,
    at: datetime = NOW,
    capped: bool = False,
) -> ClaimApproved:
    return ClaimApproved(
        claim_id=uuid.uuid4(),
        checkin_id=uuid.uuid4(),
        card_id=card_id,
        holder_id=holder_id,
        provider_id=provider_id,
        activity_id="zwemmen",
        category=ActivityCategory.SPORT,
        target_group="poverty",
        price_cents=amount * 2,
        amount_cents=amount,
        capped=capped,
        payee_kind=PayeeKind.CARD_HOLDER,
        occurred_at=at,
        decided_at=at,
    )


async def test_referrer_digest_carries_the_printable_card(
    feed: Feed,
    jobs: Jobs,
    worker: DeliveryWorker,
    pool: asyncpg.Pool,
    smtp: SmtpSink,
    keys: tuple[str, str],
) -> None:
    org = uuid.uuid4()
    people = [uuid.uuid4(), uuid.uuid4()]
    await feed(organisation(org, email="ocmw@example.org"))
    await feed(*(holder(p, org, keys[1]) for p in people))
    await feed(card(people[0], org, "1234567890128"), card(people[1], org, "2345678901236"))
    await drain(worker, pool)
    assert mails(smtp) == []  # no flood: the referrer hears once a day
    assert (await jobs.run("referrer-digests", NOW))["notifications"] == 1
    await drain(worker, pool)
    assert (await jobs.run("referrer-digests", NOW))["notifications"] == 0
    [digest] = mails(smtp)
    assert digest["To"] == "ocmw@example.org"
    assert digest["Subject"] == f"Vrijetijdspas: uw overzicht van {local_day(NOW):%d/%m/%Y}"
    body = text_of(digest)
    assert body.startswith("Beste OCMW Heist,")
    assert "kaartnummer 1234567890128" in body and "kaartnummer 2345678901236" in body
    [pdf] = [p for p in digest.iter_attachments()]
    assert pdf.get_filename() == "kaarten.pdf"
    pages = PdfReader(io.BytesIO(pdf.get_content())).pages
    assert len(pages) == 2 and "1234 5678 9012 8" in pages[0].extract_text()
    statuses = await pool.fetch("SELECT kind, status FROM deliveries ORDER BY kind")
    assert [tuple(r) for r in statuses] == [
        ("card_issued", "batched"),
        ("card_issued", "batched"),
        ("referrer_digest", "sent"),
    ]


async def test_letters_for_people_without_email(
    feed: Feed, jobs: Jobs, pool: asyncpg.Pool, keys: tuple[str, str], tmp_path: Path
) -> None:
    org, person, prov = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await feed(
        organisation(org),
        provider(prov),
        holder(person, org, keys[1], email=None, channel="letter"),
    )
    await feed(
        claim(person, uuid.uuid4(), prov, 1250),
        ClaimRejected(
            claim_id=uuid.uuid4(),
            checkin_id=uuid.uuid4(),
            card_id=uuid.uuid4(),
            holder_id=person,
            provider_id=prov,
            activity_id="zwemmen",
            reason=RejectionReason.CARD_BLOCKED,
            detail="blocked",
            occurred_at=NOW,
            decided_at=NOW,
        ),
    )
    result = await jobs.run("letters", NOW)
    assert result["letters"] == 2
    text = "\n".join(p.extract_text() for p in PdfReader(result["file"]).pages)
    assert "An Peeters" in text and "Kerkstraat 1" in text and "2220 Heist-op-den-Berg" in text
    assert "U krijgt € 12,50 terug" in text
    assert "geblokkeerd" in text
    assert (await jobs.run("letters", NOW))["letters"] == 0  # each letter in one batch only
    assert await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'sent'") == 2


async def test_scans_unused_card_eligibility_and_silent_device(
    feed: Feed, jobs: Jobs, pool: asyncpg.Pool, keys: tuple[str, str]
) -> None:
    org, person, prov, device = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    issued = card(
        person, org, until=(NOW + timedelta(days=20)).date(), issued_at=NOW - timedelta(days=100)
    )
    await feed(
        organisation(org, email="ocmw@example.org"),
        provider(prov),
        holder(person, org, keys[1]),
        issued,
    )
    signer = DeviceIdentity(device, prov, Ed25519PrivateKey.generate())
    await feed(
        ev.DeviceRegistered(
            device_id=device,
            provider_id=prov,
            public_key=public_key_b64(signer.private_key),
            key_id=1,
            registered_at=NOW - timedelta(days=8),
        )
    )
    # Signed heartbeats, each received (by our clock, which silence is judged by) when sent.
    for b in sorted(NOW - timedelta(days=d, hours=30) for d in range(5)):
        feed.router.clock = lambda b=b: b  # type: ignore[misc]
        await feed(signer.heartbeat(buffered=0, sent_at=b)[1])
    scans = ("unused-cards", "eligibility-ending", "silent-devices")
    assert [(await jobs.run(job, NOW))["notifications"] for job in scans] == [1, 1, 1]
    # A second run tells nobody again.
    assert [(await jobs.run(job, NOW))["notifications"] for job in scans] == [0, 0, 0]
    deliveries = await pool.fetch("SELECT kind, recipient, status, body FROM deliveries")
    assert Counter(r["kind"] for r in deliveries) == {
        "card_issued": 1,
        "card_unused": 1,
        "eligibility_ending": 1,
        "device_silent": 1,
    }
    rows = {r["kind"]: r for r in deliveries}
    # Never used: not "no longer used since" the day it was handed out.
    issued_on = local_day(issued.issued_at)
    assert (
        f"Kaart {issued.card_number}, uitgereikt op {issued_on:%d/%m/%Y}, werd nog niet"
        " gebruikt (100 dagen)." in rows["card_unused"]["body"]
    )
    assert "niet meer" not in rows["card_unused"]["body"]
    assert f"eindigt op {issued.eligible_until:%d/%m/%Y}" in rows["eligibility_ending"]["body"]
    assert rows["device_silent"]["recipient"] == f"provider:{prov}"
    assert rows["device_silent"]["status"] == "pending"
    assert rows["card_unused"]["status"] == "scheduled"  # goes into the daily digest
    # Used again: no longer unused.
    await feed(claim(person, issued.card_id, prov, 100))
    assert (await jobs.run("unused-cards", NOW + timedelta(days=1)))["notifications"] == 0
    # Unused since that use (the right extended meanwhile): "no longer used since".
    later = NOW + timedelta(days=95)
    await pool.execute(
        "UPDATE eligibilities SET eligible_until = $1", (later + timedelta(days=60)).date()
    )
    assert (await jobs.run("unused-cards", later))["notifications"] == 1
    body = await pool.fetchval(
        "SELECT body FROM deliveries WHERE kind = 'card_unused' ORDER BY created_at DESC LIMIT 1"
    )
    assert f"werd sinds {local_day(NOW):%d/%m/%Y} niet meer gebruikt (95 dagen)." in body


async def test_a_card_is_last_used_at_its_latest_check_in_whatever_the_order(
    feed: Feed, pool: asyncpg.Pool, keys: tuple[str, str]
) -> None:
    org, person, prov = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    issued = card(person, org, until=(NOW + timedelta(days=20)).date())
    await feed(organisation(org), provider(prov), holder(person, org, keys[1]), issued)

    async def last_used() -> datetime:
        at = await pool.fetchval(
            "SELECT last_used_at FROM cards WHERE card_id = $1", issued.card_id
        )
        assert isinstance(at, datetime)
        return at

    await feed(claim(person, issued.card_id, prov, 100, at=NOW - timedelta(days=10)))
    assert await last_used() == NOW - timedelta(days=10)
    # An earlier check-in decided later (a device that was offline) changes nothing;
    # in one batch, the latest of the batch counts.
    await feed(claim(person, issued.card_id, prov, 100, at=NOW - timedelta(days=40)))
    assert await last_used() == NOW - timedelta(days=10)
    await feed(
        claim(person, issued.card_id, prov, 100, at=NOW - timedelta(days=2)),
        claim(person, issued.card_id, prov, 100, at=NOW - timedelta(days=5)),
    )
    assert await last_used() == NOW - timedelta(days=2)


async def test_statement_finance_and_payment_outcomes(
    feed: Feed,
    jobs: Jobs,
    worker: DeliveryWorker,
    pool: asyncpg.Pool,
    smtp: SmtpSink,
    keys: tuple[str, str],
) -> None:
    org, person, prov = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    issued = card(person, org)
    await feed(
        organisation(org, email="ocmw@example.org"),
        provider(prov),
        holder(person, org, keys[1]),
        issued,
    )
    await feed(claim(person, issued.card_id, prov, 7000))
    await feed(claim(person, issued.card_id, prov, 1500, capped=True))
    await feed(claim(person, issued.card_id, prov, 2000))
    # Claims counts its ledger against its budgets and says when a line crosses 80 % and
    # 100 % of its budget (services/claims/budget_watch.py); the outcomes alone tell
    # finance nothing.
    await feed(budget_crossed(80, 8500), budget_crossed(100, 10_500))
    # A statement is for a period that is over: these check-ins reached us last month.
    start, end = previous_month(local_day(NOW))
    await pool.execute(
        "UPDATE checkins SET recorded_at = $1", datetime(end.year, end.month, 15, 12, tzinfo=UTC)
    )
    await jobs.run("provider-statements", NOW)
    request = PaymentRequested(
        payment_id=uuid.uuid4(),
        run_id=uuid.uuid4(),
        payee_kind=PayeeKind.CARD_HOLDER,
        payee_id=person,
        amount_cents=10_500,
        structured_reference="+++123/4567/89012+++",
        remittance_info="x",
        claims=3,
        requested_at=NOW,
    )
    failed_request = request.model_copy(update={"payment_id": uuid.uuid4(), "amount_cents": 500})
    await feed(request, failed_request)
    await feed(
        PaymentRunCompleted(run_id=request.run_id, payments=2, total_cents=11_000, completed_at=NOW)
    )
    await feed(
        PaymentSettled(
            payment_id=request.payment_id, amount_cents=10_500, settled_at=NOW, bank_reference="B1"
        )
    )
    await feed(
        PaymentFailed(
            payment_id=failed_request.payment_id,
            amount_cents=500,
            failed_at=NOW,
            reason_code="AC04",
            reason="Closed account",
        )
    )
    await drain(worker, pool)
    by_subject = {m["Subject"]: m for m in mails(smtp)}
    month, in_month = period_words(start, end, "nl")
    statement = text_of(by_subject[f"Vrijetijdspas: overzicht van {month}"])
    assert f"Uw toestellen stuurden ons {in_month} 3 scans van de vrijetijdspas." in statement
    # A refund-mode provider: no approvals, no discounts, no amounts (test_statements.py).
    assert "€" not in statement and "met korting" not in statement
    assert "poverty" not in statement and "Peeters" not in statement
    assert "Vrijetijdspas: budgetlijn kansentarief heeft 80% bereikt" in by_subject
    assert "Vrijetijdspas: budgetlijn kansentarief heeft 100% bereikt" in by_subject
    eighty = by_subject["Vrijetijdspas: budgetlijn kansentarief heeft 80% bereikt"]
    assert eighty["To"] == "financien@example.org"
    assert "is € 85,00 besteed van € 100,00" in text_of(eighty)
    run = text_of(by_subject[f"Vrijetijdspas: betalingsrun {str(request.run_id)[:8]} staat klaar"])
    assert "2 betaling(en) voor in totaal € 110,00." in run
    paid = by_subject["Vrijetijdspas: € 105,00 gestort op uw rekening"]
    assert paid["To"] == "an@example.org" and "+++123/4567/89012+++" in text_of(paid)
    failed = text_of(by_subject["Vrijetijdspas: terugbetaling van € 5,00 mislukt"])
    assert "met kaart 1234567890128 is mislukt: de rekening is afgesloten." in failed
    # In Dutch throughout: the bank's own text is not quoted.
    assert "Closed account" not in failed
    assert "Naar deze rekening betalen we niet opnieuw." in failed
    assert "Vrijetijdspas: terugbetaling van € 105,00 aangevraagd" in by_subject  # the demo's mail
    capped = [m for m in mails(smtp) if "minder dan de gewone korting" in text_of(m)]
    assert len(capped) == 1 and capped[0]["Subject"] == "Vrijetijdspas: u krijgt € 15,00 terug"


async def test_preferences_opt_out_and_the_delivery_log_api(
    feed: Feed,
    jobs: Jobs,
    pool: asyncpg.Pool,
    keys: tuple[str, str],
    settings: NotificationsSettings,
) -> None:
    app = FastAPI()
    app.include_router(notifications_router(lambda: pool, lambda: jobs, settings.api_token_secret))
    org, person = uuid.uuid4(), uuid.uuid4()
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as anonymous:
        refused = await anonymous.put(f"/preferences/holder:{person}", json={"digest": False})
        assert refused.status_code == 401  # nobody silences a card holder without the token
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"Authorization": f"Bearer {OPERATIONS_TOKEN}"},
    ) as http:
        put = await http.put(
            f"/preferences/holder:{person}",
            json={"opted_out": ["refund_approved"], "language": "en"},
        )
        assert put.status_code == 200
        put = await http.put(f"/preferences/org:{org}", json={"digest": False})
        await feed(organisation(org, email="ocmw@example.org"), holder(person, org, keys[1]))
        await feed(claim(person, uuid.uuid4(), uuid.uuid4(), 700), card(person, org))
        log = (await http.get("/deliveries")).json()
        assert {(d["kind"], d["status"]) for d in log} == {
            ("refund_approved", "skipped"),
            ("card_issued", "pending"),
        }
        assert "address" not in log[0] and "body" not in log[0]
        only = (await http.get("/deliveries", params={"status": "skipped"})).json()
        assert [d["last_error"] for d in only] == ["recipient opted out"]
        assert (await http.get("/deliveries", params={"recipient": f"org:{org}"})).json()[0][
            "kind"
        ] == "card_issued"
        stats = (await http.get("/stats")).json()
        assert (stats["sent"], stats["pending"], stats["dead"], stats["skipped"]) == (0, 1, 0, 1)
        queue = (await http.get("/stats/queue")).json()
        assert queue["pending"] == 1
        assert queue["latest_created_at"] == max(d["created_at"] for d in log)
        ran = await http.post(
            "/jobs/unused-cards", params={"at": (NOW + timedelta(days=91)).isoformat()}
        )
        assert ran.json() == {"job": "unused-cards", "notifications": 1}
        assert (await http.post("/jobs/nope")).status_code == 404
        running = await http.post(
            "/jobs/provider-statements",
            params={"period_from": "2100-01-01", "period_to": "2100-01-31"},
        )
        assert running.status_code == 409  # a month not over yet: its statement would miss some
        assert "not over" in running.json()["detail"]
        english = await pool.fetchval(
            "SELECT language FROM deliveries WHERE kind = 'refund_approved'"
        )
        assert english == "en"
