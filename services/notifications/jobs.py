"""Periodic work: the scans that turn quiet facts into signals (unused cards, eligibility
ending, silent devices), provider statements, and the daily batches (referrer digests,
letters). Each job runs in one transaction and is keyed so that running it twice tells
nobody twice; `now` is a parameter so that tests and operators can run it "as of" a moment.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from services.notifications import recipients
from services.notifications.messages import (
    BRUSSELS,
    Eur,
    Message,
    TillReimbursement,
    digest_line,
    language_of,
    local_day,
    provider_statement,
    render,
    usual_days_words,
)
from services.notifications.printing import Letter, letters_pdf
from services.notifications.queueing import notify
from services.notifications.settings import NotificationsSettings
from services.notifications.signals import (
    ROUTINE_DAYS,
    is_silent,
    notification_key,
    previous_month,
    routine,
)
from shared.db import DbConnection
from shared.ids import uuid7
from shared.logging import get_logger
from shared.private_files import write_private

log = get_logger(__name__)

WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

JOB_NAMES = (
    "unused-cards",
    "eligibility-ending",
    "silent-devices",
    "provider-statements",
    "referrer-digests",
    "letters",
    "retention",
)


# Called first in a job's transaction (the scheduler's record of the period): False means
# "not this time" and the job does nothing. Whatever it writes commits with the job's work
# or not at all.
Claim = Callable[[DbConnection], Awaitable[bool]]


class NotYet(Exception):
    """The job cannot do its work yet (e.g. its period is not over); try again later."""


class Jobs:
    def __init__(self, pool: asyncpg.Pool, settings: NotificationsSettings) -> None:
        self.pool = pool
        self.settings = settings

    async def run(
        self,
        name: str,
        now: datetime,
        period: tuple[date, date] | None = None,
        *,
        claim: Claim | None = None,
    ) -> dict[str, Any]:
        """Run one job in one transaction; with `claim`, only if the claim holds, and the
        claim's record commits with the job's work. Skipped: {"job": name, "skipped": True}."""
        if name not in JOB_NAMES:
            raise ValueError(f"unknown job {name!r}; known: {', '.join(JOB_NAMES)}")
        correlation_id = f"job:{name}:{now.isoformat()}"
        if name == "letters":
            return await self.letters(now, claim)
        if name == "retention":
            return await self.retention(now, claim)
        async with self.pool.acquire() as conn, conn.transaction():
            if claim is not None and not await claim(conn):
                return {"job": name, "skipped": True}
            match name:
                case "unused-cards":
                    count = await self.unused_cards(conn, now, correlation_id)
                case "eligibility-ending":
                    count = await self.eligibility_ending(conn, local_day(now), correlation_id)
                case "silent-devices":
                    count = await self.silent_devices(conn, now, correlation_id)
                case "provider-statements":
                    start, end = period or previous_month(local_day(now))
                    count = await self.provider_statements(conn, start, end, correlation_id)
                case "referrer-digests":
                    count = await self.referrer_digests(conn, now, correlation_id)
                case _:
                    raise ValueError(f"unknown job {name!r}; known: {', '.join(JOB_NAMES)}")
        log.info("job ran", job=name, notifications=count)
        return {"job": name, "notifications": count}

    async def _tell_org(
        self,
        conn: DbConnection,
        org_id: uuid.UUID,
        key: uuid.UUID,
        correlation_id: str,
        kind: str,
        payload: dict[str, Any],
        digestible: bool,
        wording: str | None = None,
        **facts: Any,
    ) -> bool:
        """`wording`: another template for this kind (messages.WORDINGS)."""
        recipient = await recipients.organisation(conn, org_id)
        if recipient is None:
            return False
        return await notify(
            conn,
            key=key,
            correlation_id=correlation_id,
            kind=kind,
            recipient=recipient,
            message=render(wording or kind, recipient.language, recipient.name, **facts),
            payload=payload,
            digestible=digestible,
        )

    async def unused_cards(self, conn: DbConnection, now: datetime, correlation_id: str) -> int:
        cutoff = now - timedelta(days=self.settings.unused_after_days)
        rows = await conn.fetch(
            # Only cards the person may still use: an expired right is not "unused".
            "SELECT c.card_id, c.card_number, c.referrer_org_id, c.last_used_at IS NULL AS never,"
            " coalesce(c.last_used_at, c.issued_at) AS last_use FROM cards c"
            " WHERE c.status = 'active' AND coalesce(c.last_used_at, c.issued_at) <= $1"
            " AND EXISTS (SELECT 1 FROM eligibilities e WHERE e.holder_id = c.holder_id"
            "             AND e.eligible_until >= $2)",
            cutoff,
            local_day(now),
        )
        told = 0
        for r in rows:
            since = local_day(r["last_use"])
            told += await self._tell_org(
                conn,
                r["referrer_org_id"],
                notification_key("card-unused", r["card_id"], r["last_use"].isoformat()),
                correlation_id,
                "card_unused",
                {
                    "card_id": str(r["card_id"]),
                    "card_number": r["card_number"],
                    "since": since,
                    "never_used": r["never"],
                },
                True,
                # A card never used is not "no longer" used: `since` is when it was issued.
                wording="card_never_used" if r["never"] else None,
                card_number=r["card_number"],
                since=since,
                days=(now - r["last_use"]).days,
            )
        return told

    async def eligibility_ending(self, conn: DbConnection, today: date, correlation_id: str) -> int:
        rows = await conn.fetch(
            "SELECT e.holder_id, e.target_group, e.eligible_until, e.referrer_org_id,"
            " (SELECT card_number FROM cards c WHERE c.holder_id = e.holder_id"
            "  ORDER BY issued_at DESC LIMIT 1) AS card_number"
            " FROM eligibilities e WHERE e.eligible_until BETWEEN $1 AND $2"
            # A grant the holder already has a later one after (a renewal, perhaps in
            # another target group) is not ending for the referrer: nothing to do.
            " AND NOT EXISTS (SELECT 1 FROM eligibilities later"
            "  WHERE later.holder_id = e.holder_id AND later.eligible_until > e.eligible_until)",
            today,
            today + timedelta(days=self.settings.eligibility_warning_days),
        )
        told = 0
        for r in rows:
            card_number = r["card_number"] or "?"
            told += await self._tell_org(
                conn,
                r["referrer_org_id"],
                # The same key the cards service's own announcement would map to: one notice
                # per end date, and a new one after an extension that ends again.
                notification_key(
                    "eligibility-ending", r["holder_id"], r["target_group"], r["eligible_until"]
                ),
                correlation_id,
                "eligibility_ending",
                {
                    "holder_id": str(r["holder_id"]),
                    "card_number": card_number,
                    "eligible_until": r["eligible_until"],
                },
                True,
                card_number=card_number,
                eligible_until=r["eligible_until"],
            )
        return told

    async def silent_devices(self, conn: DbConnection, now: datetime, correlation_id: str) -> int:
        """Tell providers about devices that missed `device_silent_hours` of the days they
        usually work (signals.is_silent): each device with the days it was heard in the
        ROUTINE_DAYS up to its last heartbeat's (Brussels) day, from which its routine is
        learnt. Silence can only be that long if the time since is: the rest are skipped."""
        rows = await conn.fetch(
            "SELECT d.device_id, d.provider_id, d.last_seen_at,"
            " coalesce((SELECT array_agg(dd.day) FROM device_days dd"
            "  WHERE dd.device_id = d.device_id"
            "  AND dd.day > (d.last_seen_at AT TIME ZONE 'Europe/Brussels')::date - $2::int"
            "  AND dd.day <= (d.last_seen_at AT TIME ZONE 'Europe/Brussels')::date),"
            "  '{}'::date[]) AS days"
            " FROM devices d WHERE NOT d.revoked AND d.last_seen_at <= $1",
            now - timedelta(hours=self.settings.device_silent_hours),
            ROUTINE_DAYS,
        )
        told = 0
        for r in rows:
            usual = routine(r["days"], local_day(r["last_seen_at"]))
            if not is_silent(
                r["last_seen_at"],
                now,
                self.settings.device_silent_hours,
                usual,
                self.settings.device_usual_active_days,
            ):
                continue
            recipient = await recipients.provider(conn, r["provider_id"])
            if recipient is None:
                continue
            since = r["last_seen_at"].astimezone(BRUSSELS)
            device = str(r["device_id"])[:8]
            told += await notify(
                conn,
                key=notification_key(
                    "device-silent", r["device_id"], r["last_seen_at"].isoformat()
                ),
                correlation_id=correlation_id,
                kind="device_silent",
                recipient=recipient,
                message=render(
                    "device_silent",
                    recipient.language,
                    recipient.name,
                    device=device,
                    since=since,
                    usual=usual_days_words(usual.weekdays, recipient.language),
                ),
                payload={
                    "device_id": str(r["device_id"]),
                    "last_seen_at": r["last_seen_at"],
                    # Monday first, in English: for a partner's system, not for people.
                    "usual_weekdays": [WEEKDAY_NAMES[d] for d in sorted(usual.weekdays)],
                },
            )
        return told

    async def provider_statements(
        self, conn: DbConnection, start: date, end: date, correlation_id: str
    ) -> int:
        """One statement per provider of the check-ins *recorded* in the period.

        Not those that *happened* in it: a device may flush a check-in up to 30 days late and
        it is still decided. Selected by occurred_at, one of 31 May that arrives on 2 June
        came after May's statement (sent on 1 June) and is not June's: it was in none. By
        arrival, a late check-in is counted in the period it arrived in, exactly once.
        """
        opens, closes = _local_midnight(start), _local_midnight(end + timedelta(days=1))
        # By the database's clock, which stamps recorded_at: a period still open would miss
        # what arrives after this statement, and a rerun cannot send it again (one key).
        if await conn.fetchval("SELECT clock_timestamp() < $1", closes):
            raise NotYet(f"the period up to {end.isoformat()} is not over")
        # Wait until every transaction that wrote check-ins so far has ended: each row
        # recorded before `closes` is then committed (or rolled back) and seen below, and a
        # row inserted after this lock carries a later recorded_at (clock_timestamp()). Held
        # to the commit, it stops the projection's inserts for this job's few statements.
        await conn.execute("SET LOCAL lock_timeout = '30s'")
        try:
            await conn.execute("LOCK TABLE checkins IN SHARE MODE")
        except asyncpg.LockNotAvailableError as exc:
            raise NotYet("check-ins are being written for over 30 s") from exc
        # Counts only, no card, person or target group. What a provider in refund mode hears
        # is what its own devices told it already (how many scans); approvals, rejections or
        # discounts would tell it who has the reduced tariff. The reimbursement is only for
        # discounts the provider gave at its own till (till-discount mode).
        rows = await conn.fetch(
            "SELECT provider_id, count(*) AS checkins,"
            " count(*) FILTER (WHERE occurred_at < $1) AS late,"
            " bool_or(till_discount) AS till,"
            " count(*) FILTER (WHERE till_discount AND approved AND NOT reversed) AS discounts,"
            " coalesce(sum(amount_cents) FILTER (WHERE till_discount AND approved"
            "  AND NOT reversed), 0)::bigint AS given,"
            " coalesce(sum(own_share_cents) FILTER (WHERE till_discount AND approved"
            "  AND NOT reversed), 0)::bigint AS own_share"
            " FROM checkins WHERE recorded_at >= $1 AND recorded_at < $2 GROUP BY provider_id",
            opens,
            closes,
        )
        told = 0
        for r in rows:
            recipient = await recipients.provider(conn, r["provider_id"])
            if recipient is None:
                continue
            # Paid the discounts it gave less its own share of them (claims nets the two).
            reimbursed = r["given"] - r["own_share"]
            till = (
                TillReimbursement(r["discounts"], Eur(reimbursed), Eur(r["own_share"]))
                if r["till"]
                else None
            )
            facts: dict[str, Any] = {
                "period_from": start,
                "period_to": end,
                "checkins": r["checkins"],
                "late_checkins": r["late"],
            }
            if till is not None:
                facts |= {
                    "till_discounts": till.discounts,
                    "reimbursed_cents": reimbursed,
                    "own_share_cents": r["own_share"],
                }
            told += await notify(
                conn,
                key=notification_key("statement", r["provider_id"], start, end),
                correlation_id=correlation_id,
                kind="provider_statement",
                recipient=recipient,
                message=provider_statement(
                    recipient.language,
                    recipient.name,
                    period_from=start,
                    period_to=end,
                    checkins=r["checkins"],
                    late=r["late"],
                    till=till,
                ),
                payload=facts,
            )
        return told

    async def referrer_digests(self, conn: DbConnection, now: datetime, correlation_id: str) -> int:
        rows = await conn.fetch(
            "SELECT delivery_id, recipient, address, kind, subject, body, language, payload"
            " FROM deliveries WHERE status = 'scheduled' AND batch = 'digest'"
            " ORDER BY recipient, created_at FOR UPDATE SKIP LOCKED"
        )
        by_recipient: dict[str, list[asyncpg.Record]] = {}
        for r in rows:
            by_recipient.setdefault(r["recipient"], []).append(r)
        for key, items in by_recipient.items():
            await self._digest(conn, key, items, now, correlation_id)
        return len(by_recipient)

    async def _digest(
        self,
        conn: DbConnection,
        key: str,
        items: list[asyncpg.Record],
        now: datetime,
        correlation_id: str,
    ) -> None:
        first = items[0]
        org = await recipients.organisation(conn, uuid.UUID(key.removeprefix("org:")))
        language = language_of(first["language"])
        payloads = [_json(i["payload"]) for i in items]
        message = render(
            "referrer_digest",
            language,
            org.name if org else None,
            day=local_day(now),
            items="\n\n".join(digest_line(Message(i["subject"], i["body"])) for i in items),
        )
        digest_id = uuid7()
        await conn.execute(
            "INSERT INTO deliveries (delivery_id, event_id, correlation_id, kind, recipient,"
            " channel, address, subject, body, language, payload)"
            " VALUES ($1, $1, $2, 'referrer_digest', $3, 'email', $4, $5, $6, $7, $8::jsonb)",
            digest_id,
            correlation_id,
            key,
            org.address if org and org.channel == "email" else first["address"],
            message.subject,
            message.body,
            language,
            json.dumps(
                {
                    "items": [
                        {"kind": i["kind"], **{k: v for k, v in p.items() if k != "cards"}}
                        for i, p in zip(items, payloads, strict=True)
                    ],
                    "cards": [c for p in payloads for c in p.get("cards", [])],
                },
                default=str,
            ),
        )
        await conn.execute(
            "UPDATE deliveries SET status = 'batched', batch_ref = $2"
            " WHERE delivery_id = ANY($1::uuid[])",
            [i["delivery_id"] for i in items],
            str(digest_id),
        )
        await conn.execute("SELECT pg_notify('deliveries', '')")

    async def letters(self, now: datetime, claim: Claim | None = None) -> dict[str, Any]:
        """Today's letters as one PDF. The file is written before the commit and removed if
        the batch was not recorded, so a letter is in exactly one printed batch."""
        today = local_day(now)
        path: Path | None = None
        first: uuid.UUID | None = None
        async with self.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    if claim is not None and not await claim(conn):
                        return {"job": "letters", "skipped": True}
                    rows = await conn.fetch(
                        "SELECT delivery_id, address, subject, body FROM deliveries"
                        " WHERE status = 'scheduled' AND batch = 'letters'"
                        " ORDER BY created_at FOR UPDATE SKIP LOCKED"
                    )
                    if not rows:
                        return {"job": "letters", "letters": 0, "file": None}
                    pdf = letters_pdf(
                        [
                            Letter(_address_lines(r["address"]), r["subject"], r["body"], today)
                            for r in rows
                        ]
                    )
                    name = _letters_file_name(today)
                    folder = Path(self.settings.letters_dir)
                    path = await asyncio.to_thread(_write_file, folder, name, pdf)
                    first = rows[0]["delivery_id"]
                    await conn.execute(
                        "UPDATE deliveries SET status = 'sent', sent_at = now(), attempts = 1,"
                        " batch_ref = $2 WHERE delivery_id = ANY($1::uuid[])",
                        [r["delivery_id"] for r in rows],
                        path.name,
                    )
            except BaseException:
                if path is not None and not await self._batch_recorded(first, path.name):
                    path.unlink(missing_ok=True)
                raise
        log.info("letter batch written", letters=len(rows), file=path.name)
        return {"job": "letters", "letters": len(rows), "file": str(path)}

    async def retention(self, now: datetime, claim: Claim | None = None) -> dict[str, Any]:
        """Forget what is no longer needed, `retention_days` after it was written: the
        address, subject, body and payload of a delivery that is over (the row stays, so
        the delivery log still counts it), device_days and job_runs rows nothing reads
        any more, and the letters job's PDFs (names and postal addresses) in `letters_dir`.
        In batches of `retention_batch` rows, each its own short transaction: a
        first run over years of deliveries never holds a lock for long, and one that stops
        halfway has kept what it did. The period counts as done with the last batch."""
        cutoff = now - timedelta(days=self.settings.retention_days)
        size = self.settings.retention_batch
        redacted = pruned = 0
        while True:
            async with self.pool.acquire() as conn, conn.transaction():
                blanked = _count(await conn.execute(_REDACT, cutoff, size))
                days = _count(await conn.execute(_PRUNE_DAYS, local_day(cutoff), size))
                redacted, pruned = redacted + blanked, pruned + days
                if blanked < size and days < size:
                    # The last batch: nothing older is left. Old job runs are few.
                    await conn.execute("DELETE FROM job_runs WHERE ran_at < $1", cutoff)
                    if claim is not None and not await claim(conn):
                        return {"job": "retention", "skipped": True}
                    break
        letters = await asyncio.to_thread(
            _remove_old_letters, Path(self.settings.letters_dir), local_day(cutoff)
        )
        log.info(
            "job ran",
            job="retention",
            deliveries_redacted=redacted,
            device_days=pruned,
            letter_files=letters,
        )
        return {
            "job": "retention",
            "deliveries_redacted": redacted,
            "device_days_removed": pruned,
            "letter_files_removed": letters,
        }

    async def _batch_recorded(self, delivery_id: uuid.UUID | None, name: str) -> bool:
        """Whether a letters batch whose transaction failed was recorded all the same: a
        connection lost during COMMIT leaves that open, and removing the file of a recorded
        batch would leave its letters marked printed and never printed. Asked on another
        connection; when even that fails, the file stays (a letter twice beats none)."""
        if delivery_id is None:
            return False
        try:
            async with self.pool.acquire() as conn:
                ref = await conn.fetchval(
                    "SELECT batch_ref FROM deliveries WHERE delivery_id = $1", delivery_id
                )
        except Exception as exc:
            log.error(
                "letter batch kept: cannot tell whether it was recorded",
                file=name,
                error=type(exc).__name__,
            )
            return True
        return bool(ref == name)


# One batch of deliveries that are over and older than the cutoff, oldest first (the partial
# index deliveries_to_redact); a row the worker or an operator holds is left to the next day.
_REDACT = """
UPDATE deliveries d SET address = '', subject = '', body = '', payload = '{}',
    redacted_at = now()
FROM (SELECT delivery_id FROM deliveries
      WHERE redacted_at IS NULL AND status IN ('sent', 'batched', 'dead', 'skipped')
        AND created_at < $1
      ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED) due
WHERE d.delivery_id = due.delivery_id
"""
# Days a device was heard. silent_devices reads the ROUTINE_DAYS (4 weeks) before a device's
# last heartbeat, and tells its provider once it missed device_silent_hours of its usual
# days, weeks later for a device that works one day a week (signals.device_days_read_back;
# settings.py keeps the retention longer than that): older days are never read again.
_PRUNE_DAYS = """
DELETE FROM device_days WHERE (device_id, day) IN
    (SELECT device_id, day FROM device_days WHERE day < $1 LIMIT $2)
"""


def _count(status: str) -> int:
    """The row count of a command status ("UPDATE 500", "DELETE 0")."""
    return int(status.rsplit(" ", 1)[-1])


def _local_midnight(day: date) -> datetime:
    """The moment a Brussels calendar day begins."""
    return datetime.combine(day, time(), BRUSSELS)


# The letters job's files: `brieven-<day of the batch>-<12 hex digits>.pdf`, and the `.tmp`
# it writes first (left behind only by a crash before the rename). Nothing else in the
# folder is the retention job's to remove.
_LETTERS_FILE = re.compile(r"brieven-(\d{4}-\d{2}-\d{2})-[0-9a-f]{12}\.(?:pdf|tmp)")


def _letters_file_name(day: date) -> str:
    return f"brieven-{day.isoformat()}-{str(uuid7())[-12:]}.pdf"


def _remove_old_letters(folder: Path, before: date) -> int:
    """Remove the letters job's files in `folder` of batches from before `before` (by the
    day in the name: the day the batch was printed, after every letter in it was queued, so
    a file goes no earlier than its deliveries' texts); how many were removed."""
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        found = _LETTERS_FILE.fullmatch(path.name)
        if found is None or not path.is_file() or path.is_symlink():
            continue
        try:
            day = date.fromisoformat(found[1])
        except ValueError:
            continue
        if day < before:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _write_file(folder: Path, name: str, content: bytes) -> Path:
    """Whole or not at all: a printer never picks up half a batch."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    tmp = path.with_suffix(".tmp")
    write_private(tmp, content)  # names and postal addresses
    os.replace(tmp, path)
    return path


def _address_lines(address: str) -> tuple[str, ...]:
    return tuple(
        part.strip() for line in address.split("\n") for part in line.split(",") if part.strip()
    )


def _json(value: Any) -> dict[str, Any]:
    parsed = json.loads(value) if isinstance(value, str) else value
    return parsed if isinstance(parsed, dict) else {}
