"""Several SMTP sessions at once: every message goes out exactly once, and each outcome
belongs to its own message, whatever session carried it."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.notifications.email_channel import Email, EmailChannel
from tests.integration.notifications.conftest import mails, text_of
from vtp.devstack.processes import free_port
from vtp.devstack.smtp import SmtpSink

pytestmark = pytest.mark.integration


def _email(n: int, to: str) -> Email:
    return Email(
        message_id=f"01a2b3c4-0000-7000-8000-{n:012d}",
        to=to,
        subject=f"Bericht {n}",
        body=f"Tekst {n}\n",
        correlation_id=f"corr-{n}",
        language="nl",
    )


@pytest.mark.parametrize("sessions", [1, 3, 8])
async def test_every_message_once_and_every_outcome_its_own(tmp_path: Path, sessions: int) -> None:
    sink = SmtpSink(tmp_path / "mail")
    sink.start()
    try:
        channel = EmailChannel(
            "127.0.0.1", sink.port, 5, "vtp@example.org", sessions=sessions, per_session=2
        )
        emails = [_email(n, f"p{n}@example.org") for n in range(11)]
        emails[4] = _email(4, "not an address")
        outcomes = await channel.send_all(emails)
        sent = mails(sink)
    finally:
        sink.stop()
    assert [o.sent for o in outcomes] == [n != 4 for n in range(11)]
    assert outcomes[4].permanent and "invalid address" in (outcomes[4].error or "")
    # Each message reached its own recipient with its own text, once (CRLF on the wire).
    assert sorted((m["To"], text_of(m).replace("\r\n", "\n")) for m in sent) == sorted(
        (f"p{n}@example.org", f"Tekst {n}\n") for n in range(11) if n != 4
    )


async def test_an_unreachable_server_leaves_every_message_for_a_retry() -> None:
    channel = EmailChannel(
        "127.0.0.1", free_port(), 2, "vtp@example.org", sessions=4, per_session=1
    )
    outcomes = await channel.send_all([_email(n, f"p{n}@example.org") for n in range(6)])
    assert len(outcomes) == 6
    assert all(not o.sent and not o.permanent for o in outcomes)
    assert all("unreachable" in (o.error or "") for o in outcomes)
