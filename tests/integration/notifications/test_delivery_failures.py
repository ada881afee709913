"""One delivery's failure is that delivery's alone: a malformed webhook URL, a message that
cannot be built or a pass that fails outright stops nobody else's mail, and what a pass sent
is recorded as sent. Stored errors name no address and no URL; till-discount holders hear
about the discount they had, finance about its payment run, letters stay private."""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiosmtplib
import asyncpg
import pytest
from aiosmtpd.controller import Controller

from services.notifications import email_channel
from services.notifications.delivery import DeliveryWorker
from services.notifications.email_channel import Email, EmailChannel
from services.notifications.jobs import Jobs
from services.notifications.settings import NotificationsSettings
from shared.events.claims import PayeeKind
from shared.events.payments import PaymentRunCompleted
from tests.integration.notifications.conftest import (
    NOW,
    Feed,
    approved,
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


async def _statuses(
    pool: asyncpg.Pool, channel: str | None = None
) -> dict[str, tuple[str, int, str | None]]:
    rows = await pool.fetch(
        "SELECT recipient, status, attempts, last_error FROM deliveries"
        " WHERE $1::text IS NULL OR channel = $1",
        channel,
    )
    return {r["recipient"]: (r["status"], r["attempts"], r["last_error"]) for r in rows}


async def test_a_malformed_webhook_url_fails_alone_and_the_mail_of_the_pass_is_recorded(
    feed: Feed, worker: DeliveryWorker, pool: asyncpg.Pool, smtp: SmtpSink, keys: tuple[str, str]
) -> None:
    broken, schemeless, mailed = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await feed(
        organisation(broken, webhook="http://[::1"),
        organisation(schemeless, webhook="ocmw.be/hook?token=s3cret"),
        organisation(mailed, email="ocmw@example.org"),
        holder(a, broken, keys[1]),
        holder(b, schemeless, keys[1]),
        holder(c, mailed, keys[1], email="c@example.org"),
    )
    await feed(payment_requested(c), payment_requested(a), payment_requested(b))
    assert await worker.deliver_due() == 3  # one pass, all three due
    rows = await _statuses(pool)
    assert rows[f"org:{mailed}"] == ("sent", 1, None)
    assert [m["To"] for m in mails(smtp)] == ["ocmw@example.org"]
    # Both URLs will never work: dead at once, with a reason an operator can act on.
    for org in (broken, schemeless):
        status, attempts, error = rows[f"org:{org}"]
        assert (status, attempts) == ("dead", 1)
        assert error is not None and "webhook URL" in error and "webhook_url" in error
    assert "malformed" in rows[f"org:{broken}"][2]  # type: ignore[operator]
    assert "scheme" in rows[f"org:{schemeless}"][2]  # type: ignore[operator]
    assert "s3cret" not in str(rows) and "ocmw.be" not in str(rows)
    # Nothing is left to send again.
    await pool.execute("UPDATE deliveries SET next_attempt_at = now()")
    assert await worker.deliver_due() == 0
    assert len(mails(smtp)) == 1


async def test_a_message_that_cannot_be_built_fails_alone(
    feed: Feed,
    worker: DeliveryWorker,
    pool: asyncpg.Pool,
    smtp: SmtpSink,
    keys: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    org, good, bad = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await feed(
        organisation(org, email="ocmw@example.org"),
        holder(good, org, keys[1], email="good@example.org"),
        holder(bad, org, keys[1], email="bad@example.org"),
    )
    await feed(approved(bad), approved(good))
    real_build = email_channel.build

    def build(email: Email, sender: str) -> bytes:
        if email.to == "bad@example.org":
            raise ValueError(f"a bug of ours cannot encode {email.to}")
        return real_build(email, sender)

    monkeypatch.setattr(email_channel, "build", build)
    assert await worker.deliver_due() == 2
    rows = await _statuses(pool)
    assert rows[f"holder:{good}"] == ("sent", 1, None)
    status, attempts, error = rows[f"holder:{bad}"]
    assert (status, attempts) == ("pending", 1)  # a failed attempt, retried later
    assert error is not None and error.startswith("unexpected ValueError")
    assert "bad@example.org" not in error
    assert [m["To"] for m in mails(smtp)] == ["good@example.org"]


async def test_an_unexpected_error_while_sending_leaves_the_rest_to_a_fresh_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = SmtpSink(tmp_path / "mail")
    sink.start()
    real_sendmail = aiosmtplib.SMTP.sendmail

    async def sendmail(self: aiosmtplib.SMTP, sender: str, to: list[str], *a: Any) -> Any:
        if to == ["p1@example.org"]:
            await self.mail(sender)
            raise RuntimeError("stuck mid-transaction")
        return await real_sendmail(self, sender, to, *a)

    monkeypatch.setattr(aiosmtplib.SMTP, "sendmail", sendmail)
    try:
        channel = EmailChannel("127.0.0.1", sink.port, 5, "vtp@example.org")
        outcomes = await channel.send_all(
            [
                Email(f"id-{n}", f"p{n}@example.org", f"Bericht {n}", "Tekst\n", "c", "nl")
                for n in range(4)
            ]
        )
        sent = mails(sink)
    finally:
        sink.stop()
    assert [o.sent for o in outcomes] == [True, False, True, True]
    assert not outcomes[1].permanent and "RuntimeError" in outcomes[1].error
    assert sorted(m["To"] for m in sent) == ["p0@example.org", "p2@example.org", "p3@example.org"]


async def test_the_worker_outlives_a_pass_that_fails_unexpectedly(
    feed: Feed, worker: DeliveryWorker, pool: asyncpg.Pool, smtp: SmtpSink, keys: tuple[str, str]
) -> None:
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(organisation(org, email="ocmw@example.org"), holder(person, org, keys[1]))
    real_pass = worker.deliver_due
    failures = 0

    async def deliver_due(limit: int = 400) -> int:
        nonlocal failures
        if failures == 0:
            failures += 1
            raise KeyError("a bug in a pass")
        return await real_pass(limit)

    worker.deliver_due = deliver_due  # type: ignore[method-assign]
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    try:
        await feed(approved(person))
        deadline = asyncio.get_running_loop().time() + 20
        while await pool.fetchval("SELECT status FROM deliveries") != "sent":
            assert not running.done(), "the worker stopped"
            assert asyncio.get_running_loop().time() < deadline, "nothing was sent"
            worker.wake()
            await asyncio.sleep(0.1)
        assert failures == 1 and not running.done()
    finally:
        stop.set()
        worker.wake()
        await asyncio.wait_for(running, 10)
    assert [m["To"] for m in mails(smtp)] == ["an@example.org"]


class _Refusing:
    """An SMTP server that refuses two mailboxes, quoting them as real servers do."""

    async def handle_RCPT(
        self, _server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address == "jan.peeters@example.be":
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if address == "els.maes@example.be":
            return f"450 4.2.0 <{address}>: Recipient address rejected: Greylisted"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, _envelope: Any) -> str:
        return "250 Message accepted for delivery"


@pytest.fixture
def refusing() -> Iterator[int]:
    controller = Controller(_Refusing(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port
    controller.stop()


async def test_a_refused_address_is_not_stored_in_the_delivery_log(
    feed: Feed,
    pool: asyncpg.Pool,
    settings: NotificationsSettings,
    keys: tuple[str, str],
    refusing: int,
) -> None:
    worker = DeliveryWorker(pool, settings.model_copy(update={"smtp_port": refusing}))
    org, jan, els = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await feed(
        organisation(org),
        holder(jan, org, keys[1], email="jan.peeters@example.be"),
        holder(els, org, keys[1], email="els.maes@example.be"),
    )
    await feed(approved(jan), approved(els))
    await worker.deliver_due()
    # (The refused message goes by letter too: test_email_refused.py.)
    rows = await _statuses(pool, channel="email")
    # What GET /deliveries lists: the refusal, without whom it refused.
    dead, waiting = rows[f"holder:{jan}"], rows[f"holder:{els}"]
    assert dead[0] == "dead" and dead[2] is not None and dead[2].startswith("SMTP 550")
    assert waiting[0] == "pending" and waiting[2] is not None and "SMTP 450" in waiting[2]
    assert "<address>" in dead[2] and "<address>" in waiting[2]
    for error in (dead[2], waiting[2]):
        assert "@" not in error and "peeters" not in error and "maes" not in error


async def test_a_till_discount_is_confirmed_without_promising_a_refund(
    feed: Feed, worker: DeliveryWorker, pool: asyncpg.Pool, smtp: SmtpSink, keys: tuple[str, str]
) -> None:
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(organisation(org, email="ocmw@example.org"), holder(person, org, keys[1]))
    at_till = approved(person, 400).model_copy(update={"payee_kind": PayeeKind.PROVIDER})
    capped = approved(person, 300).model_copy(
        update={"payee_kind": PayeeKind.PROVIDER, "capped": True}
    )
    await feed(at_till, capped)
    await drain(worker, pool)
    kinds = await pool.fetch("SELECT kind FROM deliveries ORDER BY kind")
    assert [r["kind"] for r in kinds] == ["till_discount", "till_discount_capped"]
    texts = {m["Subject"]: text_of(m) for m in mails(smtp)}
    assert set(texts) == {
        "Vrijetijdspas: € 4,00 korting aan de kassa",
        "Vrijetijdspas: € 3,00 korting aan de kassa",
    }
    for text in texts.values():
        assert "Beste An Peeters," in text
        assert "aan de kassa" in text and "U krijgt dus niets op uw rekening" in text
        assert "terug op uw rekening" not in text and "U krijgt € " not in text
    assert "minder dan de gewone korting" in texts["Vrijetijdspas: € 3,00 korting aan de kassa"]


async def test_the_fallback_finance_address_is_not_greeted_as_a_card_holder(
    feed: Feed, worker: DeliveryWorker, pool: asyncpg.Pool, smtp: SmtpSink
) -> None:
    await feed(
        PaymentRunCompleted(run_id=uuid.uuid4(), payments=2, total_cents=1100, completed_at=NOW)
    )
    await drain(worker, pool)
    [mail] = mails(smtp)
    assert mail["To"] == "financien@example.org"
    assert text_of(mail).startswith("Beste collega's,")
    assert "kaarthouder" not in text_of(mail)


async def test_the_letters_file_is_readable_by_its_owner_only(
    feed: Feed, jobs: Jobs, keys: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(organisation(org), holder(person, org, keys[1], email=None, channel="letter"))
    await feed(approved(person))
    previous = os.umask(0o022)  # the usual umask: new files readable by everyone
    try:
        result = await jobs.run("letters", NOW)
    finally:
        os.umask(previous)
    assert result["letters"] == 1
    assert stat.S_IMODE(os.stat(result["file"]).st_mode) == 0o600
