"""Deciding who to tell: events in, projections and delivery rows out, all within the
consumer's transaction (so a redelivered event changes nothing and queues nothing)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from services.notifications import projections, recipients
from services.notifications.budget_lines import budget_line_name
from services.notifications.messages import (
    CLOCK_CONSEQUENCE,
    Eur,
    category,
    clock_offset_words,
    local_day,
    payment_failure,
    payment_failure_next_step,
    rejection_reason,
    render,
    reversal_reason,
)
from services.notifications.queueing import Notice, notify_many
from services.notifications.recipients import Recipient
from services.notifications.settings import NotificationsSettings
from services.notifications.signals import (
    ClockWatch,
    heartbeat_refusal,
    judge_clock,
    notification_key,
    signed_millis,
)
from shared import topics
from shared.consumer import Incoming
from shared.db import DbConnection
from shared.deadletter import DeadLetter
from shared.events import cards as ev
from shared.events.checkins import DeviceHeartbeat
from shared.events.claims import (
    BudgetThresholdCrossed,
    ClaimApproved,
    ClaimRejected,
    ClaimReversed,
    PayeeKind,
    RejectionReason,
)
from shared.events.payments import (
    HoldReason,
    PaymentFailed,
    PaymentRequested,
    PaymentRunCompleted,
    PaymentSettled,
    RefundHeld,
)
from shared.logging import get_logger, log_context

log = get_logger(__name__)

TOPICS = (
    topics.ORGANISATION_REGISTERED,
    topics.PROVIDER_REGISTERED,
    topics.CARD_ISSUED,
    topics.CARD_STATUS_CHANGED,
    topics.ELIGIBILITY_CHANGED,
    topics.ELIGIBILITY_ENDING_SOON,
    topics.HOLDER_DETAILS_CHANGED,
    topics.HOLDER_ERASED,
    topics.DEVICE_REGISTERED,
    topics.DEVICE_REVOKED,
    topics.DEVICE_HEARTBEAT,
    topics.CLAIM_APPROVED,
    topics.CLAIM_REJECTED,
    topics.CLAIM_REVERSED,
    topics.BUDGET_THRESHOLD_CROSSED,
    topics.PAYMENT_REQUESTED,
    topics.REFUND_HELD,
    topics.PAYMENT_RUN_COMPLETED,
    topics.PAYMENT_SETTLED,
    topics.PAYMENT_FAILED,
)

# The holder's message of a held refund, by why it is held (the referrer's: + "_referrer").
_HELD_KINDS = {
    HoldReason.NO_ACCOUNT: "refund_held",
    HoldReason.ACCOUNT_REFUSED: "refund_held_refused",
}

# A replayed check-in is a duplicate of one that was decided already: telling the card
# holder "rejected" would contradict the refund they did get.
_NOT_TOLD = {RejectionReason.REPLAYED}


# Whom the municipality pays decides what the holder hears: a refund on their account, or
# (till-discount mode, the provider is reimbursed) the discount they had at the till.
_APPROVED: dict[tuple[PayeeKind, bool], str] = {
    (PayeeKind.CARD_HOLDER, False): "refund_approved",
    (PayeeKind.CARD_HOLDER, True): "refund_capped",
    (PayeeKind.PROVIDER, False): "till_discount",
    (PayeeKind.PROVIDER, True): "till_discount_capped",
}


class Router:
    def __init__(
        self, settings: NotificationsSettings, clock: Callable[[], datetime] | None = None
    ) -> None:
        self.settings = settings
        # When a message is received: ours, not the device's (a device's clock drifts, and
        # the Kafka record time is the producer's, i.e. the device's, too).
        self.clock = clock or (lambda: datetime.now(UTC))

    async def __call__(self, conn: DbConnection, batch: list[Incoming[Any]]) -> list[DeadLetter]:
        # Claim outcomes are most of the traffic: a run of them is handled together, in a
        # few statements; everything else one by one, in the order it came.
        outcomes: list[Incoming[Any]] = []
        refused: list[DeadLetter] = []
        for incoming in batch:
            if isinstance(incoming.payload, ClaimApproved | ClaimRejected):
                outcomes.append(incoming)
                continue
            await self._outcomes(conn, outcomes)
            outcomes = []
            with log_context(correlation_id=incoming.correlation_id):
                letter = await self.route_one(conn, incoming)
            if letter is not None:
                refused.append(letter)
        await self._outcomes(conn, outcomes)
        return refused

    async def route_one(self, conn: DbConnection, incoming: Incoming[Any]) -> DeadLetter | None:
        """Apply one event; a message refused as untrustworthy comes back as a dead letter."""
        e = incoming.payload
        match e:
            case ev.OrganisationRegistered():
                await projections.organisation(conn, e)
            case ev.ProviderRegistered():
                await projections.provider(conn, e)
            case ev.CardIssued():
                await projections.card_issued(conn, e)
                await self._card_issued(conn, incoming, e)
            case ev.CardStatusChanged():
                await projections.card_status(conn, e)
            case ev.EligibilityChanged():
                await projections.eligibility(conn, e)
            case ev.EligibilityEndingSoon():
                await self._eligibility_ending(conn, incoming, e)
            case ev.HolderDetailsChanged():
                await projections.holder_details(conn, e)
            case ev.HolderErased():
                await projections.holder_erased(conn, e)
            case ev.DeviceRegistered():
                await projections.device_registered(conn, e)
            case ev.DeviceRevoked():
                await projections.device_revoked(conn, e)
            case DeviceHeartbeat():
                return await self._heartbeat(conn, incoming, e)
            case ClaimApproved() | ClaimRejected():
                await self._outcomes(conn, [incoming])
            case ClaimReversed():
                await projections.checkin_reversed(conn, e)
                await self._refund_reversed(conn, incoming, e)
            case BudgetThresholdCrossed():
                await self._budget_threshold(conn, incoming, e)
            case PaymentRequested():
                await projections.payment(conn, e)
                await self._payment_requested(conn, incoming, e)
                await self._early_payment_outcomes(conn, incoming, e)
            case RefundHeld():
                await self._refund_held(conn, incoming, e)
            case PaymentRunCompleted():
                await self._payment_run(conn, incoming, e)
            case PaymentSettled() | PaymentFailed():
                await self._payment_outcome(conn, incoming, e)
        return None

    async def _heartbeat(
        self, conn: DbConnection, incoming: Incoming[Any], e: DeviceHeartbeat
    ) -> DeadLetter | None:
        """A heartbeat counts only when it is signed with the key registered for its device,
        names that device's provider and is newer than the last one; anything else is
        dead-lettered with the reason claims would give a check-in, and changes nothing (no
        device row is made, no one is told).

        The DeviceRegistered event travels on another topic, so a new device's first
        heartbeats can reach us before its key does. They are refused as `unknown_device`
        like a forger's, not parked: a heartbeat is a sample superseded by the next one a
        few minutes later, the registration counts as the device's first sign of life, and
        parking whatever an unknown sender sends would let anyone with access to the broker
        fill this database. (Such a dead letter is not sent back by `vtp deadletters
        redrive`: its id is in the inbox, and the next heartbeat makes it moot.)"""
        received_at = self.clock()
        known = await projections.known_device(conn, e.device_id)
        refusal = heartbeat_refusal(e, known, received_at)
        if refusal is not None:
            return DeadLetter(incoming.source, refusal.reason, refusal.detail)
        assert known is not None  # heartbeat_refusal refuses an unknown device
        clock = await self._device_clock(conn, incoming, e, known.clock)
        await projections.heartbeat(conn, e, received_at=received_at, clock=clock)
        return None

    async def _device_clock(
        self, conn: DbConnection, incoming: Incoming[Any], e: DeviceHeartbeat, watch: ClockWatch
    ) -> ClockWatch:
        """The provider hears when a heartbeat says the device's clock is off
        (device_clock_off), once per episode (signals.judge_clock), in the heartbeat's
        transaction: the inbox makes it once, the key once more. A provider we do not know
        yet is told by the next heartbeat that says so, the episode beginning then."""
        judged = judge_clock(
            watch, e.sent_at, e.clock_offset_ms, timedelta(seconds=self.settings.device_clock_off_s)
        )
        if not judged.began or e.clock_offset_ms is None or judged.watch.off_since is None:
            return judged.watch
        recipient = await recipients.provider(conn, e.provider_id)
        if recipient is None:
            log.info("nobody to tell", kind="device_clock_off")
            return ClockWatch(judged.watch.judged_at, None)
        offset = e.clock_offset_ms
        await self._tell(
            conn,
            incoming,
            recipient,
            "device_clock_off",
            {
                "device_id": str(e.device_id),
                "clock_offset_ms": offset,
                "ahead": offset > 0,
                "sent_at": signed_millis(e.sent_at),
            },
            key=notification_key("device-clock-off", e.device_id, judged.watch.off_since),
            device=str(e.device_id)[:8],  # as device_silent names it
            offset=clock_offset_words(offset, recipient.language),
            consequence=CLOCK_CONSEQUENCE[recipient.language][offset > 0],
        )
        return judged.watch

    async def _tell(
        self,
        conn: DbConnection,
        incoming: Incoming[Any],
        recipient: Recipient | None,
        kind: str,
        payload: dict[str, Any],
        **options: Any,
    ) -> None:
        """Queue one notification at once (claim outcomes are queued a run at a time);
        `options` as for `_notice`."""
        notice = _notice(incoming, recipient, kind, payload, **options)
        if notice is not None:
            await notify_many(conn, [notice])

    async def _card_issued(
        self, conn: DbConnection, incoming: Incoming[Any], e: ev.CardIssued
    ) -> None:
        card = {
            "card_number": e.card_number,
            "eligible_from": e.eligible_from.isoformat(),
            "eligible_until": e.eligible_until.isoformat(),
        }
        await self._tell(
            conn,
            incoming,
            await recipients.organisation(conn, e.referrer_org_id),
            "card_issued",
            {"card_id": str(e.card_id), "holder_id": str(e.holder_id), **card, "cards": [card]},
            digestible=True,
            card_number=e.card_number,
            eligible_from=e.eligible_from,
            eligible_until=e.eligible_until,
        )

    async def _eligibility_ending(
        self, conn: DbConnection, incoming: Incoming[Any], e: ev.EligibilityEndingSoon
    ) -> None:
        """The cards service's notice. The key is the one the daily eligibility-ending scan
        (jobs.py) uses for the same grant and end date: whichever spots it first tells the
        referrer, the other finds the (key, recipient) row taken and tells nobody."""
        card_number = await projections.card_number_of(conn, e.holder_id) or "?"
        await self._tell(
            conn,
            incoming,
            await recipients.organisation(conn, e.referrer_org_id),
            "eligibility_ending",
            {
                "holder_id": str(e.holder_id),
                "card_number": card_number,
                "eligible_until": e.eligible_until,
            },
            key=notification_key(
                "eligibility-ending", e.holder_id, e.target_group, e.eligible_until
            ),
            digestible=True,
            card_number=card_number,
            eligible_until=e.eligible_until,
        )

    async def _refund_reversed(
        self, conn: DbConnection, incoming: Incoming[Any], e: ClaimReversed
    ) -> None:
        """The holder was told a refund was coming, or of a discount at the till; now they
        hear it is not, or that it lapses (they owe nothing), and why in words of their own
        language (the event's reason is a code). The day named is the cancellation's, which
        is known even if the approval has not reached us yet; so is whom the approval paid
        (the event says)."""
        holder = await recipients.holder(conn, e.holder_id, self.settings.private_key)
        if e.payee_kind is None:  # a reversal from before the event said whom it paid
            till = await projections.was_till_discount(conn, e.claim_id)
        else:
            till = e.payee_kind is PayeeKind.PROVIDER
        await self._tell(
            conn,
            incoming,
            holder,
            "till_discount_reversed" if till else "refund_reversed",
            {
                "claim_id": str(e.claim_id),
                "amount_cents": e.amount_cents,
                "reason": e.reason.value,
            },
            day=local_day(e.reversed_at),
            provider=await projections.provider_name(conn, e.provider_id),
            amount=Eur(e.amount_cents),
            reason=reversal_reason(e.reason, holder.language if holder else "nl"),
        )

    async def _outcomes(self, conn: DbConnection, batch: list[Incoming[Any]]) -> None:
        """Claim outcomes: remember them and tell each card holder, in a handful of
        statements for the whole run."""
        told = [
            i
            for i in batch
            if not (isinstance(i.payload, ClaimRejected) and i.payload.reason in _NOT_TOLD)
        ]
        if not told:
            return
        recorded = await projections.checkins_decided(conn, [i.payload for i in told])
        # A refund already cancelled is not announced after its cancellation.
        announced = [
            i
            for i in told
            if recorded.get(i.payload.claim_id) is not projections.Approval.OVERTAKEN
            and i.payload.holder_id is not None  # an unknown card: there is nobody to tell
        ]
        holders = await recipients.holders(
            conn, (i.payload.holder_id for i in announced), self.settings.private_key
        )
        providers = await projections.provider_names(
            conn, (i.payload.provider_id for i in announced)
        )
        notices = []
        for incoming in announced:
            e = incoming.payload
            with log_context(correlation_id=incoming.correlation_id):
                notice = _refund_decided(
                    incoming, holders.get(e.holder_id), providers[e.provider_id]
                )
            if notice is not None:
                notices.append(notice)
        await notify_many(conn, notices)

    async def _budget_threshold(
        self, conn: DbConnection, incoming: Incoming[Any], e: BudgetThresholdCrossed
    ) -> None:
        """Claims, which keeps the budgets and the ledger, saw a budget line's discount cost
        cross a threshold; finance hears it once per line, budget year and threshold, however
        often the event comes. The line is named in words, not by its target group's code."""
        for finance in await recipients.finance(conn, self.settings.finance_email):
            await self._tell(
                conn,
                incoming,
                finance,
                "budget_threshold",
                {
                    "budget_line": e.budget_line,
                    "year": e.budget_year,
                    "percent": e.percent,
                    "spent_cents": e.consumed_cents,
                    "budget_cents": e.budget_cents,
                },
                key=notification_key("budget", e.budget_line, e.budget_year, e.percent),
                line=budget_line_name(e.budget_line, finance.language),
                year=e.budget_year,
                percent=e.percent,
                spent=Eur(e.consumed_cents),
                budget=Eur(e.budget_cents),
            )

    async def _payment_requested(
        self, conn: DbConnection, incoming: Incoming[Any], e: PaymentRequested
    ) -> None:
        if e.payee_kind.value != "card_holder":
            return
        referrer = await projections.referrer_of(conn, e.payee_id)
        await self._tell(
            conn,
            incoming,
            await recipients.organisation(conn, referrer) if referrer else None,
            "payment_requested",
            {
                "payment_id": str(e.payment_id),
                "amount_cents": e.amount_cents,
                "claims": e.claims,
                "structured_reference": e.structured_reference,
            },
            amount=Eur(e.amount_cents),
            claims=e.claims,
            reference=e.structured_reference,
        )

    async def _refund_held(
        self, conn: DbConnection, incoming: Incoming[Any], e: RefundHeld
    ) -> None:
        """Refunds wait for a bank account: the holder hears whom to give it to, and the
        referrer, who records it at the cards desk, which card it is about."""
        kind = _HELD_KINDS[e.reason]
        amount = Eur(e.amount_cents)
        payload = {"holder_id": str(e.holder_id), "amount_cents": e.amount_cents}
        holder = await recipients.holder(conn, e.holder_id, self.settings.private_key)
        await self._tell(conn, incoming, holder, kind, payload, amount=amount)
        referrer = await projections.referrer_of(conn, e.holder_id)
        card_number = await projections.card_number_of(conn, e.holder_id) or "?"
        await self._tell(
            conn,
            incoming,
            await recipients.organisation(conn, referrer) if referrer else None,
            f"{kind}_referrer",
            {**payload, "card_number": card_number},
            amount=amount,
            card_number=card_number,
        )

    async def _payment_run(
        self, conn: DbConnection, incoming: Incoming[Any], e: PaymentRunCompleted
    ) -> None:
        for finance in await recipients.finance(conn, self.settings.finance_email):
            await self._tell(
                conn,
                incoming,
                finance,
                "payment_run_ready",
                {"run_id": str(e.run_id), "payments": e.payments, "total_cents": e.total_cents},
                run=str(e.run_id)[:8],
                payments=e.payments,
                total=Eur(e.total_cents),
            )

    async def _payment_outcome(
        self, conn: DbConnection, incoming: Incoming[Any], e: PaymentSettled | PaymentFailed
    ) -> None:
        """Finance's answer. It travels on another topic than the payment request, so it
        can arrive first: then it is parked (as a reversal that overtakes its approval is,
        0003_reversed_claims.sql) and announced when the request arrives."""
        payment = await projections.payment_of(conn, e.payment_id)
        if payment is None:
            log.info("payment outcome before its request: parked", payment_id=str(e.payment_id))
            await projections.park_payment_outcome(conn, incoming.envelope, e)
            return
        if payment["payee_kind"] != "card_holder":
            return
        if isinstance(e, PaymentSettled):
            await self._payment_settled(conn, incoming, e, payment)
        else:
            await self._payment_failed(conn, incoming, e, payment)

    async def _early_payment_outcomes(
        self, conn: DbConnection, incoming: Incoming[Any], e: PaymentRequested
    ) -> None:
        """The outcomes that overtook this request, announced now under their own event ids
        (the notification key), exactly as if they had come after it: taken out of the
        parking in this transaction, they are announced once."""
        for envelope, outcome in await projections.early_payment_outcomes(conn, e.payment_id):
            # The source record is the request's: it is read only to dead-letter, and
            # announcing an outcome refuses nothing.
            early = Incoming(envelope, outcome, incoming.source)
            with log_context(correlation_id=envelope.correlation_id):
                await self._payment_outcome(conn, early, outcome)

    async def _payment_settled(
        self,
        conn: DbConnection,
        incoming: Incoming[Any],
        e: PaymentSettled,
        payment: asyncpg.Record,
    ) -> None:
        holder = await recipients.holder(conn, payment["payee_id"], self.settings.private_key)
        day = local_day(e.settled_at)
        await self._tell(
            conn,
            incoming,
            holder,
            "refund_paid",
            {"payment_id": str(e.payment_id), "amount_cents": e.amount_cents},
            day=day,
            amount=Eur(e.amount_cents),
            reference=payment["structured_reference"],
        )

    async def _payment_failed(
        self,
        conn: DbConnection,
        incoming: Incoming[Any],
        e: PaymentFailed,
        payment: asyncpg.Record,
    ) -> None:
        holder_id = payment["payee_id"]
        referrer = await projections.referrer_of(conn, holder_id)
        recipient = await recipients.organisation(conn, referrer) if referrer else None
        language = recipient.language if recipient else "nl"
        card_number = await projections.card_number_of(conn, holder_id) or "?"
        await self._tell(
            conn,
            incoming,
            recipient,
            "payment_failed",
            {
                "payment_id": str(e.payment_id),
                "holder_id": str(holder_id),
                "card_number": card_number,
                "amount_cents": e.amount_cents,
                "reason_code": e.reason_code,
            },
            amount=Eur(e.amount_cents),
            card_number=card_number,
            reason=payment_failure(e.reason_code, language),
            next_step=payment_failure_next_step(e.reason_code, language),
        )


def _notice(
    incoming: Incoming[Any],
    recipient: Recipient | None,
    kind: str,
    payload: dict[str, Any],
    *,
    key: uuid.UUID | None = None,
    digestible: bool = False,
    **facts: Any,
) -> Notice | None:
    if recipient is None:
        log.info("nobody to tell", kind=kind)
        return None
    return Notice(
        key=key or incoming.envelope.id,
        correlation_id=incoming.correlation_id,
        kind=kind,
        recipient=recipient,
        message=render(kind, recipient.language, recipient.name, **facts),
        payload=payload,
        digestible=digestible,
    )


def _refund_decided(
    incoming: Incoming[Any], holder: Recipient | None, provider: str
) -> Notice | None:
    """The card holder hears how their check-in was judged, in their language."""
    e: ClaimApproved | ClaimRejected = incoming.payload
    day = local_day(e.occurred_at)
    payload: dict[str, Any] = {"claim_id": str(e.claim_id), "day": day.isoformat()}
    language = holder.language if holder else "nl"
    if isinstance(e, ClaimApproved):
        payload |= {"amount_cents": e.amount_cents, "price_cents": e.price_cents}
        return _notice(
            incoming,
            holder,
            _APPROVED[e.payee_kind, e.capped],
            payload,
            day=day,
            provider=provider,
            category=category(e.category.value, language),
            price=Eur(e.price_cents),
            amount=Eur(e.amount_cents),
        )
    payload |= {"reason": e.reason.value}
    return _notice(
        incoming,
        holder,
        # A holder who had the discount at the till expected no refund: told that the
        # discount is not covered, not that "no refund" comes.
        "till_discount_rejected" if e.payee_kind is PayeeKind.PROVIDER else "refund_rejected",
        payload,
        day=day,
        provider=provider,
        reason=rejection_reason(e.reason, language, e.detail),
    )
