"""A card holder whose e-mail address does not work still hears from us: a message the mail
server refuses for good, or that we give up after its last attempt failed for now, goes by
letter (once, the same text) when we know a postal address, and the referrer hears, once per
address, that the address does not work, without it. Staff's mail and partners' webhooks
never fall back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from pypdf import PdfReader

from services.notifications import fallback
from services.notifications.delivery import DeliveryWorker
from services.notifications.jobs import Jobs
from services.notifications.settings import NotificationsSettings
from shared.events import cards as ev
from shared.sealing import seal
from tests.integration.notifications.conftest import (
    NOW,
    Feed,
    WebhookReceiver,
    approved,
    card,
    drain,
    holder,
    organisation,
    payment_requested,
)
from vtp.devstack.processes import free_port

pytestmark = pytest.mark.integration

UNKNOWN = "jan.peeters@example.be"  # the mailbox does not exist
SPAM = "els.maes@example.be"  # the address is accepted, the message refused
FULL = "piet.janssens@example.be"  # the mailbox is full: "later", until we give up
LATER = "mia.claes@example.be"  # the address is accepted, the message put off, for ever


class _MailServer:
    """Refuses one mailbox at RCPT TO (quoting it, as real servers do), one message at DATA,
    and keeps what it accepts."""

    def __init__(self) -> None:
        self.accepted: list[tuple[list[str], bytes]] = []

    async def handle_RCPT(
        self, _server: Any, _session: Any, envelope: Any, address: str, _options: Any
    ) -> str:
        if address == UNKNOWN:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if address == FULL:
            return f"452 4.2.2 <{address}>: Mailbox full, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        if SPAM in envelope.rcpt_tos:
            return "554 5.7.1 Message rejected as spam"
        if LATER in envelope.rcpt_tos:
            return "451 4.7.1 Greylisted, try again later"
        self.accepted.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def server() -> Iterator[tuple[_MailServer, int]]:
    handler = _MailServer()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


@pytest.fixture
def refusing_worker(
    pool: asyncpg.Pool, settings: NotificationsSettings, server: tuple[_MailServer, int]
) -> DeliveryWorker:
    return DeliveryWorker(pool, settings.model_copy(update={"smtp_port": server[1]}))


def _without_postal_address(
    holder_id: uuid.UUID, referrer: uuid.UUID, public_key: str, email: str
) -> ev.HolderDetailsChanged:
    return ev.HolderDetailsChanged(
        holder_id=holder_id,
        referrer_org_id=referrer,
        channel="email",
        language="nl",
        contact_sealed=seal(public_key, {"name": "Jan Peeters", "email": email, "address": None}),
        changed_at=NOW,
    )


async def _rows(pool: asyncpg.Pool, **where: str) -> list[asyncpg.Record]:
    clause = " AND ".join(f"{k} = ${i}" for i, k in enumerate(where, start=1)) or "true"
    return list(
        await pool.fetch(
            f"SELECT * FROM deliveries WHERE {clause} ORDER BY created_at",
            *where.values(),
        )
    )


async def test_a_refused_address_gets_the_same_message_by_letter_and_the_referrer_hears_once(
    feed: Feed,
    refusing_worker: DeliveryWorker,
    jobs: Jobs,
    pool: asyncpg.Pool,
    keys: tuple[str, str],
) -> None:
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(
        organisation(org, email="ocmw@example.org"),
        holder(person, org, keys[1], email=UNKNOWN),
        card(person, org, "1234567890128"),
    )
    await feed(approved(person, 1250), approved(person, 800))
    await refusing_worker.deliver_due()

    emails = await _rows(pool, recipient=f"holder:{person}", channel="email")
    assert [r["status"] for r in emails] == ["dead", "dead"]
    letters = await _rows(pool, recipient=f"holder:{person}", channel="letter")
    # One letter per refused message, with its very text, waiting for the print batch.
    assert len(letters) == 2
    assert sorted((r["subject"], r["body"]) for r in letters) == sorted(
        (r["subject"], r["body"]) for r in emails
    )
    assert {(r["kind"], r["status"], r["batch"]) for r in letters} == {
        ("refund_approved", "scheduled", "letters")
    }
    assert all(r["address"] == "An Peeters\nKerkstraat 1, 2220 Heist-op-den-Berg" for r in letters)

    # The referrer: one notice for the address, however many messages it refused, in the
    # daily digest like the other follow-ups, naming the card and not the address.
    [notice] = await _rows(pool, recipient=f"org:{org}", kind="holder_email_refused")
    assert (notice["status"], notice["batch"]) == ("scheduled", "digest")
    assert notice["subject"] == "Vrijetijdspas: e-mailadres van kaart 1234567890128 werkt niet"
    assert "de mailserver weigert het e-mailadres" in notice["body"]
    assert "per brief verstuurd" in notice["body"]
    for text in (notice["subject"], notice["body"], notice["payload"]):
        assert "@" not in text and "peeters" not in text.lower()

    # An operator who sends a refused message again does not make a second letter.
    await pool.execute(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = now()"
        " WHERE channel = 'email' AND status = 'dead'"
    )
    await refusing_worker.deliver_due()
    assert len(await _rows(pool, recipient=f"holder:{person}", channel="letter")) == 2
    assert len(await _rows(pool, kind="holder_email_refused")) == 1

    printed = await jobs.run("letters", NOW)
    assert printed["letters"] == 2
    text = "\n".join(p.extract_text() for p in PdfReader(printed["file"]).pages)
    assert "Beste An Peeters," in text and "U krijgt € 12,50 terug" in text
    assert (await jobs.run("referrer-digests", NOW))["notifications"] == 1
    [digest] = await _rows(pool, kind="referrer_digest")
    assert "e-mailadres van kaart 1234567890128 werkt niet" in digest["body"]
    assert UNKNOWN not in digest["body"] and UNKNOWN not in digest["payload"]


async def test_without_a_postal_address_only_the_referrer_hears(
    feed: Feed, refusing_worker: DeliveryWorker, pool: asyncpg.Pool, keys: tuple[str, str]
) -> None:
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(
        organisation(org, email="ocmw@example.org"),
        _without_postal_address(person, org, keys[1], UNKNOWN),
        card(person, org, "1234567890128"),
    )
    await feed(approved(person))
    await refusing_worker.deliver_due()
    assert await _rows(pool, channel="letter") == []
    [notice] = await _rows(pool, recipient=f"org:{org}", kind="holder_email_refused")
    assert "We kennen geen postadres" in notice["body"]
    assert "niet gekregen" in notice["body"]
    assert "per brief verstuurd" not in notice["body"]
    assert "@" not in notice["body"]


async def test_a_message_refused_for_its_content_goes_by_letter_without_blaming_the_address(
    feed: Feed,
    refusing_worker: DeliveryWorker,
    pool: asyncpg.Pool,
    keys: tuple[str, str],
    server: tuple[_MailServer, int],
) -> None:
    org, person, fine = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await feed(
        organisation(org, email="ocmw@example.org"),
        holder(person, org, keys[1], email=SPAM),
        holder(fine, org, keys[1], email="an@example.org"),
    )
    await feed(approved(person), approved(fine))
    await refusing_worker.deliver_due()
    [letter] = await _rows(pool, channel="letter")
    assert letter["recipient"] == f"holder:{person}"
    assert await _rows(pool, kind="holder_email_refused") == []
    # A message that arrived changes nothing.
    assert [to for to, _ in server[0].accepted] == [["an@example.org"]]
    assert len(await _rows(pool, recipient=f"holder:{fine}")) == 1


async def test_an_address_changed_since_the_message_was_written_is_not_reported(
    feed: Feed, refusing_worker: DeliveryWorker, pool: asyncpg.Pool, keys: tuple[str, str]
) -> None:
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(
        organisation(org, email="ocmw@example.org"), holder(person, org, keys[1], email=UNKNOWN)
    )
    await feed(approved(person))
    # The desk corrected the address before the message was tried.
    await feed(holder(person, org, keys[1], email="an@example.org"))
    await refusing_worker.deliver_due()
    assert len(await _rows(pool, channel="letter")) == 1  # that message still needs to arrive
    assert await _rows(pool, kind="holder_email_refused") == []


async def test_a_failing_fallback_still_records_the_delivery_dead(
    feed: Feed,
    refusing_worker: DeliveryWorker,
    pool: asyncpg.Pool,
    keys: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(conn: asyncpg.Connection, *_: Any) -> None:
        # A bug that fails a statement: without a savepoint it would abort the transaction
        # that records the pass's failures.
        await conn.execute("SELECT * FROM no_such_table")

    monkeypatch.setattr(fallback, "email_failed", broken)
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(
        organisation(org, email="ocmw@example.org"), holder(person, org, keys[1], email=UNKNOWN)
    )
    await feed(approved(person))
    await refusing_worker.deliver_due()
    [row] = await _rows(pool, recipient=f"holder:{person}")
    assert row["status"] == "dead"
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 1  # announced to operators


async def test_an_email_given_up_after_temporary_refusals_goes_by_letter_too(
    feed: Feed,
    refusing_worker: DeliveryWorker,
    pool: asyncpg.Pool,
    keys: tuple[str, str],
) -> None:
    org, person, put_off = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await feed(
        organisation(org, email="ocmw@example.org"),
        holder(person, org, keys[1], email=FULL),
        holder(put_off, org, keys[1], email=LATER),
        card(person, org, "1234567890128"),
    )
    await feed(approved(person, 1250), approved(person, 800), approved(put_off))
    await drain(refusing_worker, pool)  # six attempts each (max_attempts), then given up

    emails = await _rows(pool, recipient=f"holder:{person}", channel="email")
    assert [(r["status"], r["attempts"]) for r in emails] == [("dead", 6), ("dead", 6)]
    assert all(r["last_error"].startswith("gave up after 6 attempts: SMTP 452") for r in emails)
    letters = await _rows(pool, recipient=f"holder:{person}", channel="letter")
    assert sorted((r["subject"], r["body"]) for r in letters) == sorted(
        (r["subject"], r["body"]) for r in emails
    )
    assert {(r["status"], r["batch"]) for r in letters} == {("scheduled", "letters")}

    # The mailbox kept refusing: the referrer hears once, in words that say so.
    [notice] = await _rows(pool, recipient=f"org:{org}", kind="holder_email_refused")
    assert notice["subject"] == "Vrijetijdspas: e-mailadres van kaart 1234567890128 werkt niet"
    assert "wees het e-mailadres dat we kennen telkens opnieuw af" in notice["body"]
    assert "per brief verstuurd" in notice["body"]
    for text in (notice["subject"], notice["body"], notice["payload"]):
        assert "@" not in text and "janssens" not in text.lower()

    # A message put off at DATA says nothing about the address: a letter, no notice.
    [later] = await _rows(pool, recipient=f"holder:{put_off}", channel="email")
    assert later["status"] == "dead" and "SMTP 451" in later["last_error"]
    assert len(await _rows(pool, recipient=f"holder:{put_off}", channel="letter")) == 1

    # Refused for good afterwards, the same address and details: still one notice.
    await feed(approved(person))
    await pool.execute(
        "UPDATE deliveries SET address = $1 WHERE status = 'pending' AND channel = 'email'",
        UNKNOWN,
    )
    await refusing_worker.deliver_due()
    assert len(await _rows(pool, recipient=f"holder:{person}", channel="letter")) == 3
    assert len(await _rows(pool, kind="holder_email_refused")) == 1


async def test_a_full_mailbox_without_a_postal_address_tells_the_referrer_so(
    feed: Feed, refusing_worker: DeliveryWorker, pool: asyncpg.Pool, keys: tuple[str, str]
) -> None:
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(
        organisation(org, email="ocmw@example.org"),
        _without_postal_address(person, org, keys[1], FULL),
    )
    await feed(approved(person))
    await drain(refusing_worker, pool)
    assert await _rows(pool, channel="letter") == []
    [notice] = await _rows(pool, recipient=f"org:{org}", kind="holder_email_refused")
    assert "telkens opnieuw af" in notice["body"]
    assert "We kennen geen postadres" in notice["body"]
    assert "@" not in notice["body"]


async def test_a_mail_relay_away_until_we_give_up_makes_letters_only_for_card_holders(
    feed: Feed,
    pool: asyncpg.Pool,
    settings: NotificationsSettings,
    receiver: WebhookReceiver,
    keys: tuple[str, str],
) -> None:
    """Our relay never answers: the holder's message goes by letter, but the holder's
    address is not blamed; the referrer's own mail and a partner's webhook that failed
    until we gave up are staff's, for the operators, never a letter."""
    away = DeliveryWorker(pool, settings.model_copy(update={"smtp_port": free_port()}))
    mailed, hooked, person, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    url = receiver.expect("/partner", f"org:{hooked}", [503])
    await feed(
        organisation(mailed, email="ocmw@example.org"),
        organisation(hooked, webhook=url),
        holder(person, mailed, keys[1]),
        holder(other, hooked, keys[1]),
    )
    await feed(approved(person), payment_requested(person), payment_requested(other))
    await drain(away, pool)

    rows = await _rows(pool)
    dead = {(r["recipient"], r["channel"]) for r in rows if r["status"] == "dead"}
    assert dead == {
        (f"holder:{person}", "email"),
        (f"org:{mailed}", "email"),
        (f"org:{hooked}", "webhook"),
    }
    assert all(r["attempts"] == 6 for r in rows if r["status"] == "dead")
    [letter] = [r for r in rows if r["channel"] == "letter"]
    assert letter["recipient"] == f"holder:{person}" and letter["kind"] == "refund_approved"
    assert await _rows(pool, kind="holder_email_refused") == []
