"""A provider cancels a check-in (the activity did not take place, a card scanned by
mistake, ...): the claim is reversed.

Reversal = a mirror transfer for each of the claim's transfers, the budget given back, the
frequency slot freed (counting skips reversed claims) and a ClaimReversed event. A
cancellation that overtakes its check-in is parked in `pending_cancellations`; the check-in
handler then rejects the check-in as cancelled. Only the check-in's own provider can
cancel it; a second cancellation changes nothing.

Authentication: every device may write to the check-in topics, so a cancellation counts
only when signed by a known, non-revoked device of the provider it names
(authentication.authenticate_cancellation); one that is not, or that names another
provider's check-in, is dead-lettered (`device_revoked`, `bad_signature`, `wrong_provider`)
and reverses nothing. One signed by a device claims does not know yet, or with a key of it
that claims has not heard of yet (a rotation; it says so in `key_id`), waits for that
registration as a check-in does (parking.py: its DeviceRegistered travels on another topic,
through another consumer), and is put back on this topic when it comes: a provider that
registers a device, or rotates its key, and cancels at once keeps its cancellation. One
whose device or key never comes is dead-lettered as before (`unknown_device`,
`bad_signature`) when its wait is over. A pending cancellation (one that overtook its
check-in) keeps its (authenticated) provider and applies only to a check-in of that
provider: pending per (check-in, provider), so one by another provider, pending first,
neither cancels nor blocks the real one.

Concurrency: the batch first locks its holders' rows, the lock the check-in handler takes
before it reads pending cancellations. Without it a cancellation could park itself after a
check-in batch had read "no pending cancellation" but before that batch committed its
claim: the claim stayed approved (refunded) and the parked row was never consumed. Those
that wait for their device or key are parked last, after the holder locks, because parking
takes its own lock (parking.py), as the check-in batch does.

The cancellation's reason is a code (CancellationReason), kept as such in
`pending_cancellations.reason` and `claims.reversal_reason` and carried on as the
ClaimReversed's ReversalReason: no text a provider typed reaches this service.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from services.claims import ledger, parking
from services.claims.authentication import (
    KnownDevice,
    ReplacedKey,
    authenticate_cancellation,
    awaits_newer_key,
)
from services.claims.policy import RefundPolicy
from shared import topics
from shared.consumer import Incoming
from shared.db import DbConnection
from shared.deadletter import DeadLetter, DeadLetterReason
from shared.events.checkins import CancellationReason, CheckInCancelled
from shared.events.claims import ClaimReversed, PayeeKind, ReversalReason
from shared.localtime import business_day
from shared.logging import get_logger, log_context
from shared.outbox import enqueue_events

log = get_logger(__name__)
SOURCE = "/vrijetijdspas/claims"

# The holders of the batch's cards and of any claims already decided for its check-ins
# (the card number a provider sends could differ from the check-in's), locked in one
# statement in holder order, as the check-in handler does, so the two never deadlock.
_LOCK_HOLDERS = """
SELECT holder_id FROM holders
WHERE holder_id IN (SELECT holder_id FROM cards WHERE card_number = ANY($1::text[])
                    UNION SELECT holder_id FROM claims WHERE checkin_id = ANY($2::uuid[]))
ORDER BY holder_id FOR UPDATE
"""
_DEVICES = """
SELECT device_id, provider_id, public_key, revoked_at, key_id FROM devices
WHERE device_id = ANY($1::uuid[])
"""
_REPLACED_KEYS = """
SELECT device_id, public_key, superseded_at FROM device_key_history
WHERE device_id = ANY($1::uuid[])
"""
# The batch's copies of parked cancellations (parking.py): when their originals reached us.
# Read once, so gone with it (a copy delivered again is an inbox duplicate).
_RELEASED = """
DELETE FROM released_checkins WHERE record_key = ANY($1::uuid[])
RETURNING record_key, arrived_at
"""


def reversal_reason(reason: CancellationReason) -> ReversalReason:
    """The reversal's reason for a cancellation's: the same code."""
    return ReversalReason(reason.value)


class CancellationHandler:
    def __init__(self, policy: RefundPolicy) -> None:
        self.policy = policy

    async def __call__(self, conn: DbConnection, batch: list[Incoming[Any]]) -> list[DeadLetter]:
        received = [i for i in batch if isinstance(i.payload, CheckInCancelled)]
        if not received:
            return []
        dead: list[DeadLetter] = []
        waiting: list[tuple[Incoming[CheckInCancelled], datetime]] = []
        cancellations = await self._authenticated(conn, received, dead, waiting)
        if cancellations:
            # Before anything reads claims: a check-in batch of these holders that is under
            # way has then committed its claim (which we reverse), or has not started (and
            # will see the cancellation we park).
            await conn.execute(
                _LOCK_HOLDERS,
                list({i.payload.card_number for i in cancellations}),
                list({i.payload.checkin_id for i in cancellations}),
            )
        for incoming in cancellations:
            with log_context(correlation_id=incoming.correlation_id):
                refused = await self._cancel(conn, incoming)
            if refused is not None:
                dead.append(refused)
        # Last: it takes a lock (parking.py).
        await parking.park(conn, (), (), cancellations=waiting)
        return dead

    @staticmethod
    async def _authenticated(
        conn: DbConnection,
        batch: list[Incoming[CheckInCancelled]],
        dead: list[DeadLetter],
        waiting: list[tuple[Incoming[CheckInCancelled], datetime]],
    ) -> list[Incoming[CheckInCancelled]]:
        """The batch's cancellations signed by a device of their provider; those whose
        device or key claims has not heard of yet in `waiting` (with when they reached us);
        the others dead-lettered. With the current key or one replaced after the
        cancellation reached the broker (as for a check-in:
        authentication.signed_before_rotation) — for the copy of a parked one, after its
        original did."""
        now = datetime.now(UTC)
        # Only the records that name themselves copies are looked for (none, as a rule).
        copy_keys = [parking.copy_key(i, parking.CANCELLATION) for i in batch]
        found = [k for k in copy_keys if k is not None]
        released = (
            {r["record_key"]: r["arrived_at"] for r in await conn.fetch(_RELEASED, found)}
            if found
            else {}
        )
        device_ids = list({i.payload.device_id for i in batch})
        devices = {r[0]: KnownDevice(*r) for r in await conn.fetch(_DEVICES, device_ids)}
        replaced: dict[uuid.UUID, list[ReplacedKey]] = {}
        for row in await conn.fetch(_REPLACED_KEYS, list(devices)):
            replaced.setdefault(row["device_id"], []).append(
                ReplacedKey(row["public_key"], row["superseded_at"])
            )
        accepted = []
        for incoming, key in zip(batch, copy_keys, strict=True):
            e = incoming.payload
            arrived = min(
                (released.get(key) if key else None) or incoming.source.appended_at or now, now
            )
            device = devices.get(e.device_id)
            failure = authenticate_cancellation(e, device, replaced.get(e.device_id, []), arrived)
            if failure is None:
                accepted.append(incoming)
                continue
            if device is None or (
                failure.reason is DeadLetterReason.BAD_SIGNATURE and awaits_newer_key(e, device)
            ):
                # Until that device's (or key's) DeviceRegistered (parking.py).
                waiting.append((incoming, arrived))
                with log_context(correlation_id=incoming.correlation_id):
                    log.warning(
                        "cancellation parked: "
                        + (
                            "device not known yet"
                            if device is None
                            else "signed with a key not known yet"
                        ),
                        checkin_id=str(e.checkin_id),
                        device_id=str(e.device_id),
                        key_id=e.key_id,
                    )
                continue
            dead.append(DeadLetter(incoming.source, failure.reason, failure.detail))
            with log_context(correlation_id=incoming.correlation_id):
                log.warning(
                    "cancellation not authenticated",
                    reason=failure.reason.value,
                    detail=failure.detail,
                    checkin_id=str(e.checkin_id),
                    device_id=str(e.device_id),
                )
        return accepted

    async def _cancel(
        self, conn: DbConnection, incoming: Incoming[CheckInCancelled]
    ) -> DeadLetter | None:
        e = incoming.payload
        claim = await conn.fetchrow(
            "SELECT claim_id, holder_id, provider_id, outcome, amount_cents, occurred_at,"
            " reversed_at, payee_kind FROM claims WHERE checkin_id = $1",
            e.checkin_id,
        )
        if claim is None:
            # Per provider: a check-in is cancelled only by a cancellation of its own
            # provider (checkins.py), and another provider's, parked first, keeps no one
            # else's out.
            await conn.execute(
                "INSERT INTO pending_cancellations (checkin_id, provider_id, reason, cancelled_at)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (checkin_id, provider_id) DO NOTHING",
                e.checkin_id,
                e.provider_id,
                e.reason.value,
                e.cancelled_at,
            )
            log.info("cancellation parked until its check-in arrives", checkin_id=str(e.checkin_id))
            return None
        if claim["provider_id"] != e.provider_id:
            detail = "the check-in is another provider's"
            log.warning(
                "cancellation refused",
                reason=DeadLetterReason.WRONG_PROVIDER.value,
                detail=detail,
                checkin_id=str(e.checkin_id),
                device_id=str(e.device_id),
            )
            return DeadLetter(incoming.source, DeadLetterReason.WRONG_PROVIDER, detail)
        if claim["outcome"] == "rejected" or claim["holder_id"] is None:
            log.info("cancellation of a rejected check-in: nothing to reverse")
            return None
        # Budget and frequency change together under the holder lock: normally held since
        # the batch began, taken here if the card number named another holder.
        await conn.execute(
            "SELECT 1 FROM holders WHERE holder_id = $1 FOR UPDATE", claim["holder_id"]
        )
        reversed_now = await conn.fetchval(
            "UPDATE claims SET reversed_at = now(), reversal_reason = $2"
            " WHERE claim_id = $1 AND reversed_at IS NULL RETURNING reversed_at",
            claim["claim_id"],
            reversal_reason(e.reason).value,
        )
        if reversed_now is None:
            log.info("claim already reversed", claim_id=str(claim["claim_id"]))
            return None
        originals = ledger.transfers_from_rows(
            await conn.fetch(
                "SELECT * FROM transfers WHERE claim_id = $1 AND code = 'claim_approved'",
                claim["claim_id"],
            )
        )
        await ledger.post(conn, [ledger.reversal_of(t, "claim_reversed") for t in originals])
        amount = int(claim["amount_cents"])
        await conn.execute(
            "UPDATE budget_usage SET used_cents = used_cents - $3 WHERE holder_id = $1 AND period = $2",
            claim["holder_id"],
            self.policy.budget_period(business_day(claim["occurred_at"])),
            amount,
        )
        payload = ClaimReversed(
            claim_id=claim["claim_id"],
            checkin_id=e.checkin_id,
            holder_id=claim["holder_id"],
            provider_id=e.provider_id,
            amount_cents=amount,
            reason=reversal_reason(e.reason),
            reversed_at=datetime.now(UTC),
            payee_kind=PayeeKind(claim["payee_kind"]),
        )
        envelope = incoming.envelope.caused(
            type=topics.CLAIM_REVERSED.event_type, source=SOURCE, subject=str(claim["claim_id"])
        )
        await enqueue_events(conn, [(envelope, payload)])
        log.info("claim reversed", claim_id=str(claim["claim_id"]), amount_cents=amount)
        return None
