"""The topic registry: the one place that names topics, event types and message keys.

Topic names follow `<domain>.<event-name>.v<N>` and are written out literally — never
derived from a class path — so that renaming a class can never move a topic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.events import cards, checkins, claims, notifications, payments
from shared.events.base import EventPayload

DEFAULT_PARTITIONS = 8
DEAD_LETTER_TOPIC = "ops.dead-letter.v1"


@dataclass(frozen=True)
class Topic:
    name: str
    event_type: str
    payload: type[EventPayload]
    key: Callable[[Any], str]
    """The entity whose order matters: all its events land on one partition."""
    partitions: int = DEFAULT_PARTITIONS
    # Stamped by the broker with the time it took each record (Kafka's LogAppendTime), not
    # by the producer: a device's clock cannot say when its check-in arrived.
    broker_time: bool = False

    def key_of(self, payload: EventPayload) -> bytes:
        return self.key(payload).encode()


def _by(attribute: str) -> Callable[[Any], str]:
    def key(payload: Any) -> str:
        return str(getattr(payload, attribute))

    return key


ORGANISATION_REGISTERED = Topic(
    "cards.organisation-registered.v1",
    "be.vrijetijdspas.cards.OrganisationRegistered",
    cards.OrganisationRegistered,
    _by("organisation_id"),
)
PROVIDER_REGISTERED = Topic(
    "cards.provider-registered.v1",
    "be.vrijetijdspas.cards.ProviderRegistered",
    cards.ProviderRegistered,
    _by("provider_id"),
)
CARD_ISSUED = Topic(
    "cards.card-issued.v1",
    "be.vrijetijdspas.cards.CardIssued",
    cards.CardIssued,
    _by("card_number"),
)
CARD_STATUS_CHANGED = Topic(
    "cards.card-status-changed.v1",
    "be.vrijetijdspas.cards.CardStatusChanged",
    cards.CardStatusChanged,
    _by("card_number"),
)
ELIGIBILITY_CHANGED = Topic(
    "cards.eligibility-changed.v1",
    "be.vrijetijdspas.cards.EligibilityChanged",
    cards.EligibilityChanged,
    _by("holder_id"),
)
ELIGIBILITY_ENDING_SOON = Topic(
    "cards.eligibility-ending-soon.v1",
    "be.vrijetijdspas.cards.EligibilityEndingSoon",
    cards.EligibilityEndingSoon,
    _by("holder_id"),
)
HOLDER_DETAILS_CHANGED = Topic(
    "cards.holder-details-changed.v1",
    "be.vrijetijdspas.cards.HolderDetailsChanged",
    cards.HolderDetailsChanged,
    _by("holder_id"),
)
HOLDER_ERASED = Topic(
    "cards.holder-erased.v1",
    "be.vrijetijdspas.cards.HolderErased",
    cards.HolderErased,
    _by("holder_id"),
)
DEVICE_REGISTERED = Topic(
    "cards.device-registered.v1",
    "be.vrijetijdspas.cards.DeviceRegistered",
    cards.DeviceRegistered,
    _by("device_id"),
)
DEVICE_REVOKED = Topic(
    "cards.device-revoked.v1",
    "be.vrijetijdspas.cards.DeviceRevoked",
    cards.DeviceRevoked,
    _by("device_id"),
)
CHECKIN_RECORDED = Topic(
    "checkins.checkin-recorded.v1",
    "be.vrijetijdspas.checkins.CheckInRecorded",
    checkins.CheckInRecorded,
    _by("card_number"),
    # The check-in window counts to its arrival: one that arrived in time is judged so
    # however late claims gets to it (a backlog, or a replay after an incident).
    broker_time=True,
)
CHECKIN_CANCELLED = Topic(
    "checkins.checkin-cancelled.v1",
    "be.vrijetijdspas.checkins.CheckInCancelled",
    checkins.CheckInCancelled,
    _by("card_number"),
    # A cancellation signed with a key replaced since counts if it arrived before the
    # rotation (services/claims/cancellations.py): arrival as the broker saw it.
    broker_time=True,
)
DEVICE_HEARTBEAT = Topic(
    "devices.device-heartbeat.v1",
    "be.vrijetijdspas.devices.DeviceHeartbeat",
    checkins.DeviceHeartbeat,
    _by("device_id"),
)
CLAIM_APPROVED = Topic(
    "claims.claim-approved.v1",
    "be.vrijetijdspas.claims.ClaimApproved",
    claims.ClaimApproved,
    _by("card_id"),
)
CLAIM_REJECTED = Topic(
    "claims.claim-rejected.v1",
    "be.vrijetijdspas.claims.ClaimRejected",
    claims.ClaimRejected,
    _by("checkin_id"),
)
CLAIM_REVERSED = Topic(
    "claims.claim-reversed.v1",
    "be.vrijetijdspas.claims.ClaimReversed",
    claims.ClaimReversed,
    _by("holder_id"),
)
BUDGET_THRESHOLD_CROSSED = Topic(
    "claims.budget-threshold-crossed.v1",
    "be.vrijetijdspas.claims.BudgetThresholdCrossed",
    claims.BudgetThresholdCrossed,
    _by("budget_line"),
)
PAYMENT_REQUESTED = Topic(
    "payments.payment-requested.v1",
    "be.vrijetijdspas.payments.PaymentRequested",
    payments.PaymentRequested,
    _by("payment_id"),
)
REFUND_HELD = Topic(
    "payments.refund-held.v1",
    "be.vrijetijdspas.payments.RefundHeld",
    payments.RefundHeld,
    _by("holder_id"),
)
PAYMENT_RUN_COMPLETED = Topic(
    "payments.payment-run-completed.v1",
    "be.vrijetijdspas.payments.PaymentRunCompleted",
    payments.PaymentRunCompleted,
    _by("run_id"),
)
PAYMENT_SETTLED = Topic(
    "payments.payment-settled.v1",
    "be.vrijetijdspas.payments.PaymentSettled",
    payments.PaymentSettled,
    _by("payment_id"),
)
PAYMENT_FAILED = Topic(
    "payments.payment-failed.v1",
    "be.vrijetijdspas.payments.PaymentFailed",
    payments.PaymentFailed,
    _by("payment_id"),
)
PAYMENT_RETURNED = Topic(
    "payments.payment-returned.v1",
    "be.vrijetijdspas.payments.PaymentReturned",
    payments.PaymentReturned,
    _by("payment_id"),
)
NOTIFICATION_DEAD = Topic(
    "ops.notification-dead.v1",
    "be.vrijetijdspas.notifications.NotificationDeadLettered",
    notifications.NotificationDeadLettered,
    # One party's failures in order: a wrong address fails all of its messages.
    _by("recipient"),
)

ALL_TOPICS: tuple[Topic, ...] = (
    ORGANISATION_REGISTERED,
    PROVIDER_REGISTERED,
    CARD_ISSUED,
    CARD_STATUS_CHANGED,
    ELIGIBILITY_CHANGED,
    ELIGIBILITY_ENDING_SOON,
    HOLDER_DETAILS_CHANGED,
    HOLDER_ERASED,
    DEVICE_REGISTERED,
    DEVICE_REVOKED,
    CHECKIN_RECORDED,
    CHECKIN_CANCELLED,
    DEVICE_HEARTBEAT,
    CLAIM_APPROVED,
    CLAIM_REJECTED,
    CLAIM_REVERSED,
    BUDGET_THRESHOLD_CROSSED,
    PAYMENT_REQUESTED,
    REFUND_HELD,
    PAYMENT_RUN_COMPLETED,
    PAYMENT_SETTLED,
    PAYMENT_FAILED,
    PAYMENT_RETURNED,
    NOTIFICATION_DEAD,
)
BY_NAME: dict[str, Topic] = {t.name: t for t in ALL_TOPICS}
BY_PAYLOAD: dict[type[EventPayload], Topic] = {t.payload: t for t in ALL_TOPICS}
TOPIC_NAMES: tuple[str, ...] = (*BY_NAME, DEAD_LETTER_TOPIC)


def topic_for(payload: EventPayload) -> Topic:
    return BY_PAYLOAD[type(payload)]
