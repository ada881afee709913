"""The notifications service's pieces on a real PostgreSQL, a real SMTP server (aiosmtpd)
and a real HTTP webhook receiver that checks Standard Webhooks signatures."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr
from standardwebhooks import Webhook, WebhookVerificationError

from services.notifications.delivery import DeliveryWorker
from services.notifications.jobs import Jobs
from services.notifications.routing import TOPICS, Router
from services.notifications.settings import NotificationsSettings
from services.notifications.webhooks import partner_secret
from shared.consumer import BatchProcessor
from shared.db import create_pool, migrate_service
from shared.deadletter import SourceRecord
from shared.envelope import Envelope
from shared.events import cards as ev
from shared.events.base import EventPayload
from shared.events.checkins import ActivityCategory
from shared.events.claims import ClaimApproved, PayeeKind
from shared.events.payments import PaymentRequested
from shared.outbox import record_for
from shared.sealing import generate_keypair, seal
from shared.topics import topic_for
from vtp.devstack.processes import free_port
from vtp.devstack.smtp import SmtpSink

MIGRATIONS = Path(__file__).parents[3] / "services" / "notifications" / "migrations"
MASTER_SECRET = "test-master-secret"
OPERATIONS_TOKEN = "test-operations-token-of-40-characters!!"
NOW = datetime.now(UTC)


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    opened = await create_pool(database)
    await migrate_service(opened, MIGRATIONS)
    yield opened
    await opened.close()


@pytest.fixture
def keys() -> tuple[str, str]:
    return generate_keypair()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpSink]:
    sink = SmtpSink(tmp_path / "mail")
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def settings(
    database: str, keys: tuple[str, str], smtp: SmtpSink, tmp_path: Path
) -> NotificationsSettings:
    return NotificationsSettings(
        database_url=database,
        smtp_port=smtp.port,
        smtp_timeout_s=2,
        private_key=keys[0],
        retry_base_s=0.05,
        retry_max_s=0.2,
        max_attempts=6,
        webhook_timeout_s=2,
        webhook_master_secret=MASTER_SECRET,
        api_token_secret=SecretStr(OPERATIONS_TOKEN),
        letters_dir=tmp_path / "letters",
        finance_email="financien@example.org",
    )


@dataclass
class Feed:
    """Events into the routing handler through the real batch consumer (inbox included)."""

    processor: BatchProcessor
    router: Router
    pool: asyncpg.Pool
    offsets: itertools.count[int] = field(default_factory=itertools.count)

    def record(self, payload: EventPayload, envelope: Envelope | None = None) -> SourceRecord:
        topic = topic_for(payload)
        envelope = envelope or Envelope(
            type=topic.event_type, source="test", correlation_id="c-test"
        )
        out = record_for(envelope, payload)
        return SourceRecord(out.topic, 0, next(self.offsets), out.key, out.payload, out.headers)

    async def __call__(self, *payloads: EventPayload) -> None:
        await self.processor.process([self.record(p) for p in payloads])


@pytest.fixture
def feed(pool: asyncpg.Pool, settings: NotificationsSettings) -> Feed:
    router = Router(settings)
    return Feed(BatchProcessor("notifications", TOPICS, router, pool), router, pool)


@pytest.fixture
def worker(pool: asyncpg.Pool, settings: NotificationsSettings) -> DeliveryWorker:
    return DeliveryWorker(pool, settings)


@pytest.fixture
def jobs(pool: asyncpg.Pool, settings: NotificationsSettings) -> Jobs:
    return Jobs(pool, settings)


def mails(sink: SmtpSink) -> list[EmailMessage]:
    return [message_from_bytes(raw, policy=policy.default) for raw in sink.messages()]


def text_of(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool


class WebhookReceiver:
    """A partner's HTTP endpoint on 127.0.0.1: answers per path, verifies every signature."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: dict[str, list[int]] = {}
        self.secrets: dict[str, str] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                secret = receiver.secrets.get(self.path, "")
                try:
                    Webhook(secret).verify(body, headers)
                    verified = True
                except WebhookVerificationError:
                    verified = False
                receiver.received.append(Received(self.path, headers, body, verified))
                answers = receiver.answers.get(self.path) or [204]
                status = answers.pop(0) if len(answers) > 1 else answers[0]
                self.send_response(status if verified else 401)
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def expect(self, path: str, recipient: str, answers: list[int]) -> str:
        self.secrets[path] = partner_secret(MASTER_SECRET, recipient)
        self.answers[path] = list(answers)
        return self.url(path)

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [json.loads(r.body) for r in self.received if r.path == path]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    running = WebhookReceiver()
    running.thread.start()
    yield running
    running.server.shutdown()
    running.server.server_close()


# --- a small municipality ---------------------------------------------------------------


def organisation(
    org_id: uuid.UUID,
    *,
    email: str | None = None,
    webhook: str | None = None,
    kind: ev.OrganisationKind = ev.OrganisationKind.OCMW,
) -> ev.OrganisationRegistered:
    return ev.OrganisationRegistered(
        organisation_id=org_id,
        name="OCMW Heist",
        kind=kind,
        contact_email=email,
        webhook_url=webhook,
    )


def holder(
    holder_id: uuid.UUID,
    referrer: uuid.UUID,
    public_key: str,
    *,
    email: str | None = "an@example.org",
    channel: str = "email",
    language: str = "nl",
) -> ev.HolderDetailsChanged:
    return ev.HolderDetailsChanged(
        holder_id=holder_id,
        referrer_org_id=referrer,
        channel=channel,
        language=language,
        contact_sealed=seal(
            public_key,
            {
                "name": "An Peeters",
                "email": email,
                "address": "Kerkstraat 1, 2220 Heist-op-den-Berg",
            },
        ),
        changed_at=NOW,
    )


def card(
    holder_id: uuid.UUID,
    referrer: uuid.UUID,
    number: str = "1234567890128",
    until: date | None = None,
    issued_at: datetime | None = None,
) -> ev.CardIssued:
    return ev.CardIssued(
        card_id=uuid.uuid4(),
        card_number=number,
        holder_id=holder_id,
        target_group="poverty",
        eligible_from=date(2026, 1, 1),
        eligible_until=until or (NOW + timedelta(days=365)).date(),
        grace_days=30,
        referrer_org_id=referrer,
        issued_at=issued_at or NOW,
    )


def approved(holder_id: uuid.UUID, amount_cents: int = 1250) -> ClaimApproved:
    return ClaimApproved(
        claim_id=uuid.uuid4(),
        checkin_id=uuid.uuid4(),
        card_id=uuid.uuid4(),
        holder_id=holder_id,
        provider_id=uuid.uuid4(),
        activity_id="theater-1",
        category=ActivityCategory.CULTURE,
        target_group="poverty",
        price_cents=2500,
        amount_cents=amount_cents,
        capped=False,
        payee_kind=PayeeKind.CARD_HOLDER,
        occurred_at=NOW - timedelta(hours=2),
        decided_at=NOW,
    )


def payment_requested(holder_id: uuid.UUID) -> PaymentRequested:
    return PaymentRequested(
        payment_id=uuid.uuid4(),
        run_id=uuid.uuid4(),
        payee_kind=PayeeKind.CARD_HOLDER,
        payee_id=holder_id,
        amount_cents=990,
        structured_reference="+++123/4567/89012+++",
        remittance_info="Vrijetijdspas",
        claims=1,
        requested_at=NOW,
    )


async def drain(worker: DeliveryWorker, pool: asyncpg.Pool, timeout_s: float = 20) -> None:
    """Run delivery passes until nothing is pending (retries included)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        await worker.deliver_due()
        pending = await pool.fetchval("SELECT count(*) FROM deliveries WHERE status = 'pending'")
        if pending == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("deliveries still pending")
