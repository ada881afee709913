"""The notifications service as a real process: events on the real broker become one
e-mail in the SMTP sink, the delivery log and jobs answer over HTTP."""

from __future__ import annotations

import asyncio
import email.policy
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from shared.envelope import Envelope
from shared.events import cards as ev
from shared.events.base import EventPayload
from shared.events.checkins import ActivityCategory
from shared.events.claims import ClaimApproved, PayeeKind
from shared.outbox import record_for
from shared.sealing import seal
from shared.topics import topic_for
from tests.support.kafka import produce_raw
from vtp.devstack.stack import Stack

pytestmark = pytest.mark.e2e


async def _publish(stack: Stack, payload: EventPayload, envelope: Envelope | None = None) -> None:
    topic = topic_for(payload)
    envelope = envelope or Envelope(type=topic.event_type, source="e2e", correlation_id="e2e-notif")
    out = record_for(envelope, payload)
    await produce_raw(
        stack.bootstrap_servers, out.topic, out.payload, key=out.key, headers=out.headers
    )


async def _eventually(check: Any, timeout_s: float = 45) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.3)


async def test_refund_mail_once_and_delivery_log(stack: Stack) -> None:
    now = datetime.now(UTC)
    org, person = uuid.uuid4(), uuid.uuid4()
    address = f"e2e-{person.hex[:8]}@example.org"
    await _publish(
        stack,
        ev.OrganisationRegistered(
            organisation_id=org,
            name="OCMW e2e",
            kind=ev.OrganisationKind.OCMW,
            contact_email="ocmw-e2e@example.org",
        ),
    )
    await _publish(
        stack,
        ev.HolderDetailsChanged(
            holder_id=person,
            referrer_org_id=org,
            channel="email",
            language="nl",
            contact_sealed=seal(
                stack.keys["notifications_public"], {"name": "An", "email": address}
            ),
            changed_at=now,
        ),
    )
    url = stack.url("notifications")
    async with httpx.AsyncClient(
        base_url=url, timeout=10, headers=stack.operations_headers()
    ) as http:

        async def known(key: str) -> bool:
            answer = await http.get(f"/recipients/{key}")
            return answer.status_code == 200 and answer.json()["channel"] is not None

        # Events of different topics may arrive in any order: wait until both are known.
        await _eventually(lambda: known(f"org:{org}"))
        await _eventually(lambda: known(f"holder:{person}"))
        await _publish(
            stack,
            ev.CardIssued(
                card_id=uuid.uuid4(),
                card_number="1234567890128",
                holder_id=person,
                target_group="poverty",
                eligible_from=now.date(),
                eligible_until=(now + timedelta(days=300)).date(),
                grace_days=0,
                referrer_org_id=org,
                issued_at=now,
            ),
        )

        async def card_told() -> bool:
            rows = (await http.get("/deliveries", params={"recipient": f"org:{org}"})).json()
            return any(r["kind"] == "card_issued" for r in rows)

        await _eventually(card_told)
        claim = ClaimApproved(
            claim_id=uuid.uuid4(),
            checkin_id=uuid.uuid4(),
            card_id=uuid.uuid4(),
            holder_id=person,
            provider_id=uuid.uuid4(),
            activity_id="e2e",
            category=ActivityCategory.CULTURE,
            target_group="poverty",
            price_cents=1000,
            amount_cents=500,
            capped=False,
            payee_kind=PayeeKind.CARD_HOLDER,
            occurred_at=now - timedelta(hours=1),
            decided_at=now,
        )
        envelope = Envelope(type=topic_for(claim).event_type, source="e2e", correlation_id="e2e-c")
        for _ in range(3):  # the same event, three times on the wire
            await _publish(stack, claim, envelope)

        async def sent() -> list[dict[str, Any]]:
            rows = (await http.get("/deliveries", params={"recipient": f"holder:{person}"})).json()
            return [r for r in rows if r["status"] == "sent"]

        [row] = await _eventually(sent)
        assert row["kind"] == "refund_approved" and row["attempts"] == 1
        await asyncio.sleep(1.0)
        assert stack.smtp is not None
        mine = [raw for raw in stack.smtp.messages() if address.encode() in raw]
        assert len(mine) == 1
        mail = email.message_from_bytes(mine[0], policy=email.policy.default)
        assert isinstance(mail, EmailMessage)
        assert mail["Subject"] == "Vrijetijdspas: u krijgt € 5,00 terug"
        assert "€ 5,00" in mail.get_content()
        stats = (await http.get("/stats")).json()
        assert {"sent", "pending", "dead"} <= set(stats)
        job = await http.post("/jobs/referrer-digests")
        assert job.status_code == 200 and job.json()["job"] == "referrer-digests"
