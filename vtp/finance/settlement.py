"""`vtp finance settle FILE`: the bank's answer, reported back to claims as PaymentSettled,
PaymentFailed or PaymentReturned events.

The status file is a CSV with a header `payment_id,status,reason_code,bank_reference`;
`status` is `settled` (or ISO 20022 `ACSC`/`ACCP`), `failed` (or `RJCT`) or `returned` (or
`RTRN`: the bank took back a payment it had settled, e.g. the account was closed after
booking), `reason_code` an ISO 20022 reason (e.g. AC01 wrong account) for failures and
returns. Event ids are derived from payment and answer, so settling the same file twice
publishes the same events and claims applies them once."""

from __future__ import annotations

import csv
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from shared import topics
from shared.envelope import Envelope
from shared.events.base import EventPayload
from shared.events.payments import PaymentFailed, PaymentReturned, PaymentSettled
from shared.kafka import make_producer
from vtp.finance.book import BookedPayment, PaymentBook

SOURCE = "/vrijetijdspas/finance"
_NAMESPACE = uuid.UUID("0b5f4c1e-3f8a-4f5b-9d5e-7a1c2b3d4e5f")
_REASONS = {
    "AC01": "rekeningnummer onjuist",
    "AC04": "rekening afgesloten",
    "AC06": "rekening geblokkeerd",
    "AG01": "overschrijving naar deze rekening niet toegestaan",
    "AM04": "onvoldoende saldo",
    "BE04": "adres van de begunstigde ontbreekt",
    "MD07": "rekeninghouder overleden",
    "MS03": "reden niet opgegeven door de bank",
    "RC01": "bankcode onjuist",
}


class Outcome(StrEnum):
    SETTLED = "settled"
    FAILED = "failed"
    RETURNED = "returned"


_STATUSES = {
    **dict.fromkeys(("settled", "acsc", "accp", "acwc"), Outcome.SETTLED),
    **dict.fromkeys(("failed", "rjct"), Outcome.FAILED),
    **dict.fromkeys(("returned", "rtrn"), Outcome.RETURNED),
}


class SettleFileError(ValueError):
    """The status file cannot be read; nothing was published."""


@dataclass(frozen=True)
class Answer:
    payment_id: uuid.UUID
    outcome: Outcome
    reason_code: str
    bank_reference: str


@dataclass
class SettleResult:
    settled: int = 0
    failed: int = 0
    returned: int = 0
    unknown: list[str] = field(default_factory=list)
    already_answered: int = 0
    contradicted: list[str] = field(default_factory=list)  # answered otherwise before
    # Settled before, failed now: what the bank did not pay after all is a return.
    failed_after_settled: list[str] = field(default_factory=list)
    # Never exported: no bank can have paid it (a wrong line, or another finance's file).
    not_exported: list[str] = field(default_factory=list)
    # Returned, but the book has no settlement of it: a bank returns only what it paid.
    returned_unsettled: list[str] = field(default_factory=list)


def status_file_text(raw: bytes) -> str:
    """The status file's text: UTF-8 (with or without a byte-order mark), or, failing
    that, Windows-1252, in which Excel on a Belgian Windows saves "CSV (semicolon)"."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def parse_status_file(text: str) -> list[Answer]:
    # Finance edits the file in Excel, which saves it with a byte-order mark ("CSV UTF-8")
    # or, in a Belgian locale, with semicolons.
    lines = text.removeprefix("\ufeff").splitlines()
    header = lines[0] if lines else ""
    delimiter = ";" if ";" in header and "," not in header else ","
    reader = csv.DictReader(lines, delimiter=delimiter)
    if reader.fieldnames is None or not {"payment_id", "status"} <= set(reader.fieldnames):
        raise SettleFileError("the header must name at least payment_id and status")
    answers = []
    for row in reader:
        line = reader.line_num
        if not any((value or "").strip() for value in row.values() if isinstance(value, str)):
            continue  # a row Excel keeps after its cells were cleared: ";;;"
        try:
            payment_id = uuid.UUID((row.get("payment_id") or "").strip())
        except ValueError as exc:
            raise SettleFileError(f"line {line}: payment_id is not a UUID") from exc
        status = (row.get("status") or "").strip().lower()
        if status not in _STATUSES:
            raise SettleFileError(
                f"line {line}: status {status!r} is neither settled, failed nor returned"
            )
        outcome = _STATUSES[status]
        reason = (row.get("reason_code") or "").strip().upper()[:16]
        if outcome is not Outcome.SETTLED and not reason:
            reason = "MS03"
        answers.append(Answer(payment_id, outcome, reason, (row.get("bank_reference") or "")[:64]))
    if len({a.payment_id for a in answers}) != len(answers):
        raise SettleFileError("a payment appears twice in the status file")
    return answers


def answer_events(
    book: PaymentBook, answers: list[Answer], result: SettleResult
) -> list[tuple[Envelope, EventPayload]]:
    now = datetime.now(UTC)
    out: list[tuple[Envelope, EventPayload]] = []
    for a in answers:
        payment = book.get(a.payment_id)
        if payment is None:
            result.unknown.append(str(a.payment_id))
            continue
        if payment.status == "pending":
            result.not_exported.append(str(a.payment_id))
            continue
        if payment.status == "settled" and a.outcome is Outcome.FAILED:
            # A settled payment closed at claims: only a return reopens it.
            result.failed_after_settled.append(str(a.payment_id))
            continue
        if (payment.status, a.outcome) in _CONTRADICTIONS:
            # Claims closed the payment on the first answer and ignores any other: sending
            # this one would only make the book disagree with the ledger.
            result.contradicted.append(str(a.payment_id))
            continue
        if a.outcome is Outcome.RETURNED and payment.status not in ("settled", "returned"):
            result.returned_unsettled.append(str(a.payment_id))
            continue
        if payment.status == "returned" and a.outcome is Outcome.SETTLED:
            # The settlement before the return (its file settled again): claims has both,
            # and marking it would make the book say settled.
            result.already_answered += 1
            continue
        if payment.status == a.outcome:
            result.already_answered += 1
        match a.outcome:
            case Outcome.SETTLED:
                result.settled += 1
            case Outcome.FAILED:
                result.failed += 1
            case Outcome.RETURNED:
                result.returned += 1
        envelope = Envelope(
            id=uuid.uuid5(_NAMESPACE, f"{a.payment_id}/{a.outcome.value}"),
            type=topics.BY_PAYLOAD[_PAYLOADS[a.outcome]].event_type,
            source=SOURCE,
            subject=str(a.payment_id),
            correlation_id=str(a.payment_id),
        )
        out.append((envelope, _payload(a, payment, now)))
    return out


_CONTRADICTIONS = {
    ("failed", Outcome.SETTLED),
    ("returned", Outcome.FAILED),
}
_PAYLOADS: dict[Outcome, type[EventPayload]] = {
    Outcome.SETTLED: PaymentSettled,
    Outcome.FAILED: PaymentFailed,
    Outcome.RETURNED: PaymentReturned,
}


def _payload(a: Answer, payment: BookedPayment, now: datetime) -> EventPayload:
    if a.outcome is Outcome.SETTLED:
        return PaymentSettled(
            payment_id=a.payment_id,
            amount_cents=payment.amount_cents,
            settled_at=now,
            bank_reference=a.bank_reference or payment.reference,
        )
    if a.outcome is Outcome.FAILED:
        return PaymentFailed(
            payment_id=a.payment_id,
            amount_cents=payment.amount_cents,
            failed_at=now,
            reason_code=a.reason_code,
            reason=_REASONS.get(a.reason_code, "betaling geweigerd door de bank"),
        )
    return PaymentReturned(
        payment_id=a.payment_id,
        amount_cents=payment.amount_cents,
        returned_at=now,
        reason_code=a.reason_code,
        reason=_REASONS.get(a.reason_code, "betaling teruggestort door de bank"),
    )


async def settle(bootstrap_servers: str, book: PaymentBook, answers: list[Answer]) -> SettleResult:
    result = SettleResult()
    events = answer_events(book, answers, result)
    producer = make_producer(bootstrap_servers, client_id="vtp-finance")
    try:
        await producer.start()
        for envelope, payload in events:
            topic = topics.topic_for(payload)
            await producer.send_and_wait(
                topic.name,
                value=payload.model_dump_json().encode(),
                key=topic.key_of(payload),
                headers=envelope.headers(),
            )
    finally:
        await producer.stop()
    # Marked only after the broker has every answer: a crash before re-sends (same ids).
    with book.transaction():
        for envelope, payload in events:
            assert isinstance(payload, PaymentSettled | PaymentFailed | PaymentReturned)
            book.mark_answered(
                payload.payment_id,
                _STATUS_OF[type(payload)],
                envelope.time.isoformat(),
                getattr(payload, "reason_code", None),
            )
    return result


_STATUS_OF = {payload: outcome.value for outcome, payload in _PAYLOADS.items()}
