"""Webhooks signed per the Standard Webhooks specification (webhook-id, webhook-timestamp,
webhook-signature = v1,base64(HMAC-SHA256(secret, "id.timestamp.body"))).

Each partner has its own secret, derived from the service's master secret and the
partner's recipient key, so that a leaked partner secret forges nothing for another partner
and the operator can hand a partner its secret without storing one per partner.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import httpx
from standardwebhooks import Webhook

from services.notifications.outcomes import Outcome, http_outcome, permanent, transient


def partner_secret(master_secret: str, recipient: str) -> str:
    raw = hmac.new(master_secret.encode(), recipient.encode(), hashlib.sha256).digest()
    return "whsec_" + base64.b64encode(raw).decode()


def webhook_body(kind: str, payload: dict[str, Any], at: datetime) -> str:
    """Only facts the partner already holds: ids, card numbers, amounts, dates; no names."""
    return json.dumps(
        {"type": f"vrijetijdspas.{kind}", "timestamp": at.isoformat(), "data": payload},
        separators=(",", ":"),
        sort_keys=True,
    )


def signed_headers(secret: str, message_id: str, body: str, at: datetime) -> dict[str, str]:
    timestamp = at.replace(microsecond=0)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, timestamp, body),
        "content-type": "application/json",
    }


_FIX = "; correct the organisation's webhook_url"


def url_problem(url: str) -> str | None:
    """Why a partner's webhook URL can never be called, or None. The reason never quotes
    the URL: it may carry the partner's token, and the reason reaches the operators."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return f"malformed webhook URL ({type(exc).__name__}){_FIX}"
    if parsed.scheme not in ("http", "https"):
        return f"webhook URL needs an http:// or https:// scheme{_FIX}"
    if not parsed.host:
        return f"webhook URL has no host{_FIX}"
    return None


def endpoint_of(url: str) -> str:
    """The server a webhook goes to (scheme, host, port): the unit that is up or down. A URL
    that cannot be parsed is its own endpoint (its send fails at once, url_problem)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return url
    return f"{parsed.scheme}://{parsed.host}:{parsed.port or ''}"


class WebhookChannel:
    def __init__(self, master_secret: str, timeout_s: float) -> None:
        self.master_secret = master_secret
        self.timeout_s = timeout_s

    async def send(
        self,
        client: httpx.AsyncClient,
        *,
        url: str,
        recipient: str,
        message_id: str,
        kind: str,
        payload: dict[str, Any],
    ) -> Outcome:
        problem = url_problem(url)
        if problem is not None:
            return permanent(problem)
        # The id stays the delivery id on every retry: the receiver deduplicates on it.
        now = datetime.now(UTC)
        body = webhook_body(kind, payload, now)
        headers = signed_headers(
            partner_secret(self.master_secret, recipient), message_id, body, now
        )
        try:
            response = await client.post(url, content=body, headers=headers, timeout=self.timeout_s)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            # Whatever url_problem let through: asking again will not mend the URL.
            return permanent(f"webhook URL rejected: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return transient(f"webhook unreachable: {type(exc).__name__}: {exc}")
        return http_outcome(response.status_code)
