"""What one delivery attempt comes to when the address or URL is wrong: a permanent failure
of that delivery with a reason an operator can act on, never an exception, and never the
address or the partner's URL (with its token) in the text that is stored and listed."""

from __future__ import annotations

import aiosmtplib
import httpx
import pytest

from services.notifications.outcomes import permanent, smtp_outcome, transient, without_addresses
from services.notifications.webhooks import WebhookChannel


async def _send(url: str) -> tuple[bool, bool, str]:
    channel = WebhookChannel("master", timeout_s=1)
    async with httpx.AsyncClient() as client:
        outcome = await channel.send(
            client, url=url, recipient="org:x", message_id="id-1", kind="k", payload={}
        )
    return outcome.sent, outcome.permanent, outcome.error


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://[::1", "malformed webhook URL"),
        ("ocmw.be/hook?token=s3cret", "http:// or https:// scheme"),
        ("ftp://ocmw.be/hook?token=s3cret", "http:// or https:// scheme"),
        ("https:///hook?token=s3cret", "no host"),
    ],
)
async def test_a_webhook_url_that_can_never_work_is_a_permanent_failure(
    url: str, words: str
) -> None:
    sent, final, error = await _send(url)
    assert (sent, final) == (False, True)
    assert words in error and "webhook_url" in error
    assert "s3cret" not in error and "ocmw.be" not in error


def test_a_refused_recipient_is_not_quoted_in_the_outcome() -> None:
    refused = aiosmtplib.SMTPRecipientsRefused(
        [
            aiosmtplib.SMTPRecipientRefused(
                550, "5.1.1 <jan.peeters@example.be>: User unknown", "jan.peeters@example.be"
            )
        ]
    )
    outcome = smtp_outcome(550, f"recipient refused: {refused}")
    assert outcome.permanent and outcome.error.startswith("SMTP 550: recipient refused")
    assert "jan.peeters" not in outcome.error and "<address>" in outcome.error


@pytest.mark.parametrize("make", [permanent, transient])
def test_an_address_cut_by_the_length_limit_is_still_masked(make: object) -> None:
    # The address straddles character 300: cut first, "jan.peeters@exa" would slip through.
    text = "x" * 285 + " jan.peeters@example.be refused"
    error = make(text).error  # type: ignore[operator]
    assert "jan.peeters" not in error and len(error) <= 300


def test_urls_are_masked_whatever_their_case() -> None:
    assert without_addresses("POST HTTPS://p.example/h?token=abc failed") == "POST <url> failed"


def test_a_recipient_put_off_is_the_address_for_now_a_message_put_off_is_not() -> None:
    """A 4xx to RCPT TO (a full mailbox) is about the address, retried; if it is still the
    answer when the e-mail is given up, the referrer hears that the address does not work.
    A 4xx to the message, or a relay that does not answer, says nothing about the address."""
    full = smtp_outcome(452, "4.2.2 mailbox full", to_recipient=True)
    assert (full.sent, full.permanent, full.address_deferred) == (False, False, True)
    assert not full.address_refused
    assert not smtp_outcome(451, "4.7.1 greylisted").address_deferred
    assert not transient("SMTP server unreachable").address_deferred
    refused = smtp_outcome(550, "5.1.1 unknown", to_recipient=True)
    assert refused.address_refused and not refused.address_deferred
