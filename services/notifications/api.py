"""The HTTP API for operators and tests: the delivery log, counts, preferences, and jobs
on command (so nobody has to wait for a schedule to see its effect)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, Field, SecretStr

from services.notifications import recipients
from services.notifications.jobs import JOB_NAMES, Jobs, NotYet
from services.notifications.messages import TEMPLATES, WORDINGS
from services.notifications.recipients import Recipient
from shared.api_auth import protected_router

DeliveryStatus = Literal["pending", "sent", "dead", "scheduled", "batched", "skipped"]
_LOG_COLUMNS = (
    "delivery_id, event_id, kind, recipient, channel, status, attempts, last_error, batch,"
    " batch_ref, created_at, sent_at, next_attempt_at, redacted_at"
)


def opt_out_kinds() -> frozenset[str]:
    """What a recipient can opt out of: every kind of notification queued for one ("*": all
    of them). The daily digest is not one: it carries what was queued, opt-outs applied."""
    return frozenset(TEMPLATES) - {"referrer_digest", *WORDINGS} | {"provider_statement", "*"}


def _known_kind(kind: str) -> str:
    # A typo would be stored and silence nothing: the person keeps getting what they
    # asked not to get. Not echoed: the answer names the field and the known kinds.
    known = opt_out_kinds()
    if kind not in known:
        raise ValueError(f"not a kind of notification; known: {', '.join(sorted(known))}")
    return kind


class Preferences(BaseModel):
    channel: Literal["email", "webhook", "letter"] | None = None
    language: Literal["nl", "en"] | None = None
    digest: bool = True
    opted_out: list[Annotated[str, AfterValidator(_known_kind)]] = Field(
        default_factory=list, max_length=50
    )


_RECIPIENT_KINDS = ("org", "provider", "holder")


def _recipient_key(key: str) -> str:
    """A recipient key as recipients.py writes them, or a 422 naming the field."""
    if key == "finance":
        return key
    kind, _, raw = key.partition(":")
    try:
        if kind in _RECIPIENT_KINDS and str(uuid.UUID(raw)) == raw.lower():
            return f"{kind}:{raw.lower()}"
    except ValueError:
        pass
    raise _invalid(
        ("path", "recipient"), "expected org:<uuid>, provider:<uuid>, holder:<uuid> or finance"
    )


def _invalid(location: tuple[str, ...], reason: str) -> RequestValidationError:
    return RequestValidationError([{"loc": location, "msg": reason, "type": "value_error"}])


async def _resolve(conn: Any, key: str, private_key: str | None) -> Recipient | None:
    kind, _, raw = key.partition(":")
    try:
        ident = uuid.UUID(raw)
    except ValueError:
        return None
    match kind:
        case "org":
            return await recipients.organisation(conn, ident)
        case "provider":
            return await recipients.provider(conn, ident)
        case "holder":
            return await recipients.holder(conn, ident, private_key)
    return None


def notifications_router(
    pool: Callable[[], asyncpg.Pool],
    jobs: Callable[[], Jobs],
    token_secret: SecretStr,
    private_key: str | None = None,
) -> APIRouter:
    """Every route needs the operations token: preferences can silence a card holder."""
    router = protected_router(token_secret)

    @router.get("/recipients/{key}")
    async def recipient(key: str) -> dict[str, Any]:
        """How we would reach a party now (channel, language, digest, opt-outs); never the
        address itself."""
        async with pool().acquire() as conn:
            found = await _resolve(conn, key, private_key)
        if found is None:
            raise HTTPException(404, "no such recipient known here")
        return {
            "key": found.key,
            "channel": found.channel,
            "language": found.language,
            "digest": found.digest,
            "opted_out": sorted(found.opted_out),
        }

    @router.get("/stats")
    async def stats() -> dict[str, Any]:
        async with pool().acquire() as conn:
            rows = await conn.fetch(
                "SELECT kind, channel, status, count(*) AS n FROM deliveries"
                " GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
            )
        totals = {
            status: sum(r["n"] for r in rows if r["status"] == status)
            for status in ("sent", "pending", "dead", "scheduled", "batched", "skipped")
        }
        return {"deliveries": [dict(r) for r in rows], **totals}

    @router.get("/stats/queue")
    async def queue() -> dict[str, Any]:
        """What is waiting to be sent, from indexes only (unlike /stats, which counts the
        whole delivery log): cheap enough to poll while a backlog drains."""
        async with pool().acquire() as conn:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM deliveries WHERE status = 'pending') AS pending,"
                " (SELECT count(*) FROM deliveries WHERE status = 'pending'"
                "  AND next_attempt_at <= now()) AS due,"
                " (SELECT max(created_at) FROM deliveries) AS latest_created_at"
            )
        assert row is not None  # a SELECT without FROM always returns its one row
        return dict(row)

    @router.get("/deliveries")
    async def deliveries(
        status: DeliveryStatus | None = None,
        kind: str | None = None,
        recipient: str | None = None,
        channel: Literal["email", "webhook", "letter"] | None = None,
        since: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The delivery log, newest first. Addresses and texts are not listed: the log is
        for following deliveries, not for reading people's mail."""
        async with pool().acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_LOG_COLUMNS} FROM deliveries"  # noqa: S608 - constant columns
                " WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR kind = $2)"
                " AND ($3::text IS NULL OR recipient = $3) AND ($4::text IS NULL OR channel = $4)"
                " AND ($5::timestamptz IS NULL OR created_at >= $5)"
                " ORDER BY created_at DESC LIMIT $6",
                status,
                kind,
                recipient,
                channel,
                since,
                max(1, min(limit, 1000)),
            )
        return [dict(r) for r in rows]

    @router.post("/deliveries/{delivery_id}/retry")
    async def retry(delivery_id: uuid.UUID) -> dict[str, Any]:
        """An operator sends a dead delivery again after fixing its cause (while its text
        is kept: after the retention period there is nothing left to send)."""
        async with pool().acquire() as conn:
            row = await conn.fetchrow(
                "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = now()"
                " WHERE delivery_id = $1 AND status = 'dead' AND redacted_at IS NULL"
                " RETURNING delivery_id",
                delivery_id,
            )
            if row is None:
                raise HTTPException(
                    409, "only a dead delivery within the retention period can be retried"
                )
            await conn.execute("SELECT pg_notify('deliveries', '')")
        return {"delivery_id": delivery_id, "status": "pending"}

    @router.get("/preferences/{recipient}")
    async def get_preferences(recipient: str) -> Preferences:
        recipient = _recipient_key(recipient)
        async with pool().acquire() as conn:
            row = await conn.fetchrow(
                "SELECT channel, language, digest, opted_out FROM preferences WHERE recipient = $1",
                recipient,
            )
        # As stored, even an opt-out stored before kinds were checked.
        return Preferences.model_construct(**dict(row)) if row else Preferences()

    @router.put("/preferences/{recipient}")
    async def put_preferences(recipient: str, body: Preferences) -> Preferences:
        recipient = _recipient_key(recipient)
        async with pool().acquire() as conn:
            await conn.execute(
                "INSERT INTO preferences (recipient, channel, language, digest, opted_out)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (recipient) DO UPDATE SET"
                " channel = excluded.channel, language = excluded.language,"
                " digest = excluded.digest, opted_out = excluded.opted_out, updated_at = now()",
                recipient,
                body.channel,
                body.language,
                body.digest,
                body.opted_out,
            )
        return body

    @router.post("/jobs/{name}")
    async def run_job(
        name: str,
        at: datetime | None = None,
        period_from: date | None = None,
        period_to: date | None = None,
    ) -> dict[str, Any]:
        """Run a scheduled job now, optionally as of `at` (e.g. 91 days ahead)."""
        if name not in JOB_NAMES:
            raise HTTPException(404, f"unknown job; known: {', '.join(JOB_NAMES)}")
        if at is not None and at.tzinfo is None:
            raise _invalid(("query", "at"), "must carry a UTC offset")
        period = _period(name, period_from, period_to)
        try:
            return await jobs().run(name, at or datetime.now(UTC), period)
        except NotYet as exc:
            # A statement for a period still running would miss what arrives later in it.
            raise HTTPException(409, f"{name}: {exc}; try again once it is over") from exc

    return router


def _period(name: str, start: date | None, end: date | None) -> tuple[date, date] | None:
    """A statement's period as asked: both ends or neither (then: last month), in order,
    and only for the job that has a period. Anything else is refused, not ignored: the
    operator would get another period's statement than the one asked for."""
    if start is None and end is None:
        return None
    if name != "provider-statements":
        raise _invalid(("query", "period_from"), "only provider-statements has a period")
    if start is None or end is None:
        missing = "period_from" if start is None else "period_to"
        raise _invalid(("query", missing), "give both period_from and period_to, or neither")
    if start > end:
        raise _invalid(("query", "period_to"), "must not be before period_from")
    return start, end
