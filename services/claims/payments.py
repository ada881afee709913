"""Payment runs and settlements.

A run gathers every payable account with a positive balance into one payment request per
payee, moves the amount to `clearing:payments-in-transit`, links the payee's unpaid claims
to the payment and publishes PaymentRequested for finance. Finance answers: settled moves
the amount on to the bank; failed returns it to payable and unlinks the claims, so the next
run pays them again (and the PaymentFailed event tells the notifications service). A
payment the bank returns after settling it (PaymentReturned) goes the same way: the amount
moves from the bank back to payable and its claims are paid again. A return read before
its payment's settlement (another topic) waits for it (waiting_returns.py).

A payable can go negative when a claim that was already paid is reversed: nothing is paid
then, and later claims of the same payee first make up the difference.

A provider that bears a share of the discount cost (distribution key) owes it on its
receivable; in till-discount mode we owe it the whole discount on its payable. Each run
first nets the two (netting.py): one transfer per provider of min(payable, receivable)
(`provider_share_netted`), so the provider is paid the discount less its own share, and its
receivable keeps only what it still owes. A netted share of a claim reversed afterwards is
moved back to the payable by the next run (`provider_share_netting_undone`). A refund-mode
provider is owed nothing: its receivable stays for the monthly report.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from stdnum.be import ogm_vcs

from services.claims import ledger, netting, waiting_returns
from shared import topics
from shared.consumer import Incoming
from shared.db import DbConnection
from shared.deadletter import DeadLetter, DeadLetterReason
from shared.envelope import Envelope, new_envelope
from shared.events.base import EventPayload
from shared.events.claims import PayeeKind
from shared.events.payments import (
    ACCOUNT_REASON_CODES,
    HoldReason,
    PaymentFailed,
    PaymentRequested,
    PaymentReturned,
    PaymentRunCompleted,
    PaymentSettled,
    RefundHeld,
)
from shared.ids import uuid7
from shared.logging import get_logger, log_context
from shared.outbox import enqueue_events

log = get_logger(__name__)
SOURCE = "/vrijetijdspas/claims"
_RUN_LOCK = 7_227_101
_ATTEMPTS = 3


def structured_reference(number: int) -> str:
    """The Belgian OGM/VCS `+++ddd/dddd/ddddd+++` of a 10-digit reference number."""
    if not 0 <= number < 10**10:
        raise ValueError(f"a structured reference holds 10 digits, not {number}")
    body = f"{number:010d}"
    return f"+++{ogm_vcs.format(body + ogm_vcs.calc_check_digits(body))}+++"


def remittance_text(payee_kind: PayeeKind, reference: str, claims: int) -> str:
    what = "terugbetaling" if payee_kind is PayeeKind.CARD_HOLDER else "vergoeding kansentarief"
    return f"Vrijetijdspas {what} {claims} activiteit(en) {reference}"[:140]


async def run_payments(conn: DbConnection, correlation_id: str | None = None) -> dict[str, Any]:
    """One payment run, in one transaction; concurrent runs wait for each other."""
    # A session lock, taken before the transaction: a snapshot taken while waiting for
    # another run would not see that run's payments and would pay their amounts again.
    await conn.execute("SELECT pg_advisory_lock($1)", _RUN_LOCK)
    try:
        attempt = 1
        while True:
            try:
                return await _run(conn, correlation_id)
            except asyncpg.SerializationError:
                # A claim to link changed (was reversed) after the snapshot: nothing was
                # written, and a fresh snapshot pays it consistently.
                if attempt == _ATTEMPTS:
                    raise
                log.info("payment run met a concurrent change, running again", attempt=attempt)
                attempt += 1
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _RUN_LOCK)


async def _run(conn: DbConnection, correlation_id: str | None) -> dict[str, Any]:
    # Repeatable read: the balances and the claims linked to their payments come from one
    # snapshot. At read committed a claim committed between the two was linked to a
    # payment that did not include its amount.
    async with conn.transaction(isolation="repeatable_read"):
        netted = await _net_provider_shares(conn)
        rows = await conn.fetch(
            """
            SELECT account, sum(amount) AS balance FROM (
                SELECT credit_account AS account, amount_cents AS amount FROM transfers
                WHERE credit_account LIKE 'payable:%'
                UNION ALL
                SELECT debit_account, -amount_cents FROM transfers WHERE debit_account LIKE 'payable:%'
            ) e GROUP BY account HAVING sum(amount) > 0 ORDER BY account
            """
        )
        beneficiaries = await _beneficiaries(conn, [_payee(row["account"]) for row in rows])
        # A card holder without an account we can pay is not paid: a request without one
        # would wait at finance for ever (finance cannot know whose it is), and one to an
        # account the bank refused would be refused again. The refund stays payable, and
        # the first run after the desk records an(other) account pays it whole
        # (HolderDetailsChanged brings it).
        reasons = await _hold_reasons(conn, rows, beneficiaries)
        held = [row for row in rows if row["account"] in reasons]
        rows = [row for row in rows if row["account"] not in reasons]
        for row in held:
            log.warning(
                "refund held: no bank account we can pay for the card holder",
                payee_id=str(_payee(row["account"])[1]),
                amount_cents=int(row["balance"]),
                reason=reasons[row["account"]].value,
            )
        references = await _new_references(conn, len(rows))
        run_id = uuid7()
        now = datetime.now(UTC)
        transfers: list[ledger.Transfer] = []
        events: list[tuple[Envelope, EventPayload]] = []
        payments: list[tuple[Any, ...]] = []
        links: list[tuple[uuid.UUID, uuid.UUID]] = []
        for row, reference in zip(rows, references, strict=True):
            payee_kind, payee_id = _payee(row["account"])
            amount = int(row["balance"])
            payment_id = uuid7()
            claim_ids = await _link_unpaid_claims(conn, payee_kind, payee_id, payment_id)
            links += [(payment_id, c) for c in claim_ids]
            await _trace_claims(conn, payment_id, "claim included in payment request")
            count = max(len(claim_ids), 1)
            sealed = beneficiaries.get((payee_kind, payee_id))
            transfers.append(
                ledger.Transfer(
                    uuid7(),
                    row["account"],
                    ledger.IN_TRANSIT,
                    amount,
                    "payment_requested",
                    payment_id=payment_id,
                )
            )
            payments.append(
                (
                    payment_id,
                    run_id,
                    payee_kind.value,
                    payee_id,
                    row["account"],
                    amount,
                    reference,
                    count,
                    "requested",
                    sealed,
                )
            )
            payload = PaymentRequested(
                payment_id=payment_id,
                run_id=run_id,
                payee_kind=payee_kind,
                payee_id=payee_id,
                amount_cents=amount,
                structured_reference=reference,
                remittance_info=remittance_text(payee_kind, reference, count),
                beneficiary_sealed=sealed,
                claims=count,
                requested_at=now,
            )
            events.append(
                (_envelope(topics.PAYMENT_REQUESTED, payment_id, correlation_id), payload)
            )
        total = sum(p[5] for p in payments)
        await conn.execute(
            "INSERT INTO payment_runs (run_id, payments, total_cents) VALUES ($1, $2, $3)",
            run_id,
            len(payments),
            total,
        )
        if payments:
            await conn.executemany(
                "INSERT INTO payments (payment_id, run_id, payee_kind, payee_id, account, amount_cents,"
                " reference, claims, status, beneficiary_sealed)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                payments,
            )
            await conn.executemany(
                "INSERT INTO payment_claims (payment_id, claim_id) VALUES ($1, $2)", links
            )
        await ledger.post(conn, transfers)
        events += await _holds(conn, held, reasons, now, correlation_id)
        events.append(
            (
                _envelope(topics.PAYMENT_RUN_COMPLETED, run_id, correlation_id),
                PaymentRunCompleted(
                    run_id=run_id, payments=len(payments), total_cents=total, completed_at=now
                ),
            )
        )
        await enqueue_events(conn, events)
    held_cents = sum(int(row["balance"]) for row in held)
    log.info(
        "payment run completed",
        run_id=str(run_id),
        payments=len(payments),
        total_cents=total,
        held=len(held),
        held_cents=held_cents,
        netted_cents=netted,
    )
    return {
        "run_id": str(run_id),
        "payments": len(payments),
        "total_cents": total,
        # Providers' shares of the discount cost set off against what we owed them (less
        # any netted shares of reversed claims given back): see netting.py.
        "netted_cents": netted,
        # Card holders owed a refund without a bank account we can pay (none, or refused).
        "held_without_bank_account": len(held),
        "held_cents": held_cents,
    }


async def _net_provider_shares(conn: DbConnection) -> int:
    """Before anything is paid: per provider, one transfer that sets what it owes us (its
    shares of the discount cost) off against what we owe it (netting.py), posted in the
    run's transaction, so the payables read next are net and an attempt rolled back nets
    nothing. The signed total moved from payables to receivables."""
    transfers: list[ledger.Transfer] = []
    for r in await conn.fetch(_PROVIDER_BALANCES):
        transfer = netting.netting_transfer(
            r["provider_id"], int(r["payable"]), int(r["receivable"])
        )
        if transfer is not None:
            log.info(
                "provider share netted against its payable",
                provider_id=str(r["provider_id"]),
                code=transfer.code,
                amount_cents=transfer.amount_cents,
            )
            transfers.append(transfer)
    await ledger.post(conn, transfers)
    return sum(t.amount_cents if t.code == netting.NETTED else -t.amount_cents for t in transfers)


# Each provider's payable (its credit balance) and receivable (its debit balance).
_PROVIDER_BALANCES = """
SELECT split_part(account, ':', 3)::uuid AS provider_id,
       coalesce(sum(amount) FILTER (WHERE account LIKE 'payable:%'), 0) AS payable,
       coalesce(-sum(amount) FILTER (WHERE account LIKE 'receivable:%'), 0) AS receivable
FROM (
    SELECT credit_account AS account, amount_cents AS amount FROM transfers
    WHERE credit_account LIKE 'payable:provider:%' OR credit_account LIKE 'receivable:provider:%'
    UNION ALL
    SELECT debit_account, -amount_cents FROM transfers
    WHERE debit_account LIKE 'payable:provider:%' OR debit_account LIKE 'receivable:provider:%'
) e GROUP BY 1 ORDER BY 1
"""


async def _hold_reasons(
    conn: DbConnection,
    rows: list[Any],
    beneficiaries: dict[tuple[PayeeKind, uuid.UUID], str | None],
) -> dict[str, HoldReason]:
    """Per payable account of a card holder who cannot be paid now, why: no account known,
    or the account known is the one the bank refused (or returned) the holder's last
    answered payment for."""
    holders = {
        payee[1]: row["account"]
        for row in rows
        if (payee := _payee(row["account"]))[0] is PayeeKind.CARD_HOLDER
    }
    reasons = {
        account: HoldReason.NO_ACCOUNT
        for holder, account in holders.items()
        if beneficiaries.get((PayeeKind.CARD_HOLDER, holder)) is None
    }
    for last in await conn.fetch(
        _LAST_PAYMENTS, [h for h, a in holders.items() if a not in reasons]
    ):
        if (
            last["status"] in ("failed", "returned")
            and last["reason_code"] in ACCOUNT_REASON_CODES
            and last["beneficiary_sealed"] is not None
            and last["beneficiary_sealed"]
            == beneficiaries.get((PayeeKind.CARD_HOLDER, last["payee_id"]))
        ):
            reasons[holders[last["payee_id"]]] = HoldReason.ACCOUNT_REFUSED
    return reasons


# Each card holder's payment the bank answered last: a return comes after the settlement it
# undoes, often after a later payment was requested (which says nothing about the account
# until it is answered).
_LAST_PAYMENTS = """
SELECT DISTINCT ON (payee_id) payee_id, status, reason_code, beneficiary_sealed FROM payments
WHERE payee_kind = 'card_holder' AND payee_id = ANY($1::uuid[]) AND closed_at IS NOT NULL
ORDER BY payee_id, coalesce(returned_at, closed_at) DESC, created_at DESC
"""


async def _holds(
    conn: DbConnection,
    held: list[Any],
    reasons: dict[str, HoldReason],
    now: datetime,
    correlation_id: str | None,
) -> list[tuple[Envelope, EventPayload]]:
    """The holds this run starts, announced (RefundHeld: notifications tells the holder,
    and their referrer, that an account is missing or was refused), and those it ends: a
    holder no longer held (paid, or owed nothing now) is announced again if ever held
    again. Not at every run."""
    owed = {_payee(row["account"])[1]: int(row["balance"]) for row in held}
    why = {_payee(row["account"])[1]: reasons[row["account"]] for row in held}
    await conn.execute(
        "DELETE FROM held_refunds WHERE NOT (holder_id = ANY($1::uuid[]))", list(owed)
    )
    # An erased holder's refunds can be paid to no one: held, but nobody is asked for an
    # account (the referrer would be asked about a person who is gone).
    started = await conn.fetch(
        "WITH started AS (INSERT INTO held_refunds (holder_id, held_at, reason)"
        " SELECT unnest($1::uuid[]), $2, unnest($3::text[])"
        " ON CONFLICT DO NOTHING RETURNING holder_id)"
        " SELECT holder_id FROM started WHERE NOT EXISTS"
        " (SELECT 1 FROM holders h WHERE h.holder_id = started.holder_id"
        " AND h.erased_at IS NOT NULL)",
        list(owed),
        now,
        [why[h].value for h in owed],
    )
    return [
        (
            _envelope(topics.REFUND_HELD, r["holder_id"], correlation_id),
            RefundHeld(
                holder_id=r["holder_id"],
                amount_cents=owed[r["holder_id"]],
                held_at=now,
                reason=why[r["holder_id"]],
            ),
        )
        for r in started
    ]


def _payee(account: str) -> tuple[PayeeKind, uuid.UUID]:
    """Who a payable account (`payable:holder:<id>`, `payable:provider:<id>`) pays."""
    _, kind, payee = account.split(":")
    return PayeeKind.CARD_HOLDER if kind == "holder" else PayeeKind.PROVIDER, uuid.UUID(payee)


async def _beneficiaries(
    conn: DbConnection, payees: list[tuple[PayeeKind, uuid.UUID]]
) -> dict[tuple[PayeeKind, uuid.UUID], str | None]:
    """Each payee's name and IBAN, sealed for finance, where the desk recorded them."""
    holders = [p for kind, p in payees if kind is PayeeKind.CARD_HOLDER]
    providers = [p for kind, p in payees if kind is PayeeKind.PROVIDER]
    found: dict[tuple[PayeeKind, uuid.UUID], str | None] = {}
    for kind, query, ids in (
        (PayeeKind.CARD_HOLDER, _HOLDER_ACCOUNTS, holders),
        (PayeeKind.PROVIDER, _PROVIDER_ACCOUNTS, providers),
    ):
        if ids:
            found |= {(kind, r[0]): r[1] for r in await conn.fetch(query, ids)}
    return found


_HOLDER_ACCOUNTS = (
    "SELECT holder_id, beneficiary_sealed FROM holders WHERE holder_id = ANY($1::uuid[])"
)
_PROVIDER_ACCOUNTS = (
    "SELECT provider_id, beneficiary_sealed FROM providers WHERE provider_id = ANY($1::uuid[])"
)


async def _new_references(conn: DbConnection, count: int) -> list[str]:
    """`count` references no payment holds: the next numbers of the sequence, skipping any
    that a reference drawn at random before migration 0007 already took. Runs take turns
    (the run lock), so no other run can take a number between this check and the insert."""
    references: list[str] = []
    while len(references) < count:
        candidates = [
            structured_reference(n)
            for n in await conn.fetchval(
                "SELECT array_agg(nextval('payment_reference_numbers'))"
                " FROM generate_series(1, $1)",
                count - len(references),
            )
        ]
        taken = set(
            await conn.fetchval(
                "SELECT coalesce(array_agg(reference), '{}') FROM payments"
                " WHERE reference = ANY($1::text[])",
                candidates,
            )
        )
        references += [c for c in candidates if c not in taken]
    return references


async def _link_unpaid_claims(
    conn: DbConnection, payee_kind: PayeeKind, payee_id: uuid.UUID, payment_id: uuid.UUID
) -> list[uuid.UUID]:
    """The payee's claims not paid yet now belong to this payment (reversed ones too: their
    reversal is netted in the same amount)."""
    column = "holder_id" if payee_kind is PayeeKind.CARD_HOLDER else "provider_id"
    rows = await conn.fetch(
        f"UPDATE claims SET payment_id = $3 WHERE payee_kind = $1 AND {column} = $2"  # noqa: S608 - column is one of two literals
        " AND outcome <> 'rejected' AND payment_id IS NULL RETURNING claim_id",
        payee_kind.value,
        payee_id,
        payment_id,
    )
    return [r["claim_id"] for r in rows]


async def _trace_claims(conn: DbConnection, payment_id: uuid.UUID, message: str) -> None:
    """One log line per claim under the claim's own correlation id, so that following one
    check-in in the logs leads from the device all the way to its payment."""
    for claim in await conn.fetch(
        "SELECT claim_id, correlation_id FROM claims WHERE payment_id = $1", payment_id
    ):
        with log_context(correlation_id=claim["correlation_id"]):
            log.info(message, claim_id=str(claim["claim_id"]), payment_id=str(payment_id))


def _envelope(topic: topics.Topic, subject: uuid.UUID, correlation_id: str | None) -> Envelope:
    return new_envelope(
        type=topic.event_type, source=SOURCE, subject=str(subject), correlation_id=correlation_id
    )


async def apply_settlements(conn: DbConnection, batch: list[Incoming[Any]]) -> list[DeadLetter]:
    """Finance's answers. A payment closes once, and a settled one is returned once; a
    repeated or late answer changes nothing, and one that matches no payment (an unknown
    id, another amount, the opposite of the answer that closed it, a return of a payment
    that failed) is dead-lettered as `unmatched` for finance to look at: the payment it
    meant stays as it was meanwhile. A return of a payment still requested waits for its
    settlement (waiting_returns.py), and is applied with it."""
    refused: list[DeadLetter] = []
    for incoming in batch:
        with log_context(correlation_id=incoming.correlation_id):
            refused += await _apply_settlement(conn, incoming)
    return refused


async def _apply_settlement(conn: DbConnection, incoming: Incoming[Any]) -> list[DeadLetter]:
    e = incoming.payload
    if isinstance(e, PaymentReturned):
        letter = await _apply_return(conn, incoming, e)
        return [] if letter is None else [letter]
    settled = isinstance(e, PaymentSettled)
    status = "settled" if settled else "failed"
    row = await conn.fetchrow(
        "UPDATE payments SET status = $2, reason = $3, reason_code = $4, bank_reference = $5,"
        " closed_at = now() WHERE payment_id = $1 AND status = 'requested' AND amount_cents = $6"
        " RETURNING account, amount_cents",
        e.payment_id,
        status,
        e.reason if isinstance(e, PaymentFailed) else None,
        e.reason_code if isinstance(e, PaymentFailed) else None,
        e.bank_reference if isinstance(e, PaymentSettled) else None,
        e.amount_cents,
    )
    if row is None:
        letter = await _unmatched(conn, incoming, e)
        return [] if letter is None else [letter]
    await _trace_claims(conn, e.payment_id, f"claim payment {status}")
    target = ledger.BANK if settled else row["account"]
    await ledger.post(
        conn,
        [
            ledger.Transfer(
                uuid7(),
                ledger.IN_TRANSIT,
                target,
                int(row["amount_cents"]),
                f"payment_{status}",
                payment_id=e.payment_id,
            )
        ],
    )
    if not settled:
        await _unlink_claims(conn, e.payment_id)
    log.info(
        "payment " + status, payment_id=str(e.payment_id), amount_cents=int(row["amount_cents"])
    )
    return await _apply_waiting_returns(conn, e.payment_id)


async def _apply_waiting_returns(conn: DbConnection, payment_id: uuid.UUID) -> list[DeadLetter]:
    """After the payment's settlement (or failure), in its transaction: the returns read
    before it. Settled, the first is applied and any other is a repeat; failed, they can
    never apply and are dead-lettered as `unmatched`, as they were before they could wait."""
    refused: list[DeadLetter] = []
    for waited in await waiting_returns.take(conn, payment_id):
        with log_context(correlation_id=waited.incoming.correlation_id):
            letter = await _apply_return(
                conn, waited.incoming, waited.incoming.payload, read_at=waited.since
            )
        if letter is not None:
            refused.append(letter)
    return refused


async def _apply_return(
    conn: DbConnection,
    incoming: Incoming[Any],
    e: PaymentReturned,
    read_at: datetime | None = None,
) -> DeadLetter | None:
    """The bank took back a payment it had settled: the amount goes from the bank back to
    the payee's payable account (a new transfer: the ledger is never rewritten) and the
    claims are unlinked, so the next run pays them again, or holds them until another
    account is recorded when the return was for the account's sake (`_hold_reasons`).
    A return of a payment still requested, of its amount, waits for the settlement
    (waiting_returns.py); `read_at` is when a return that waited was read, which stays
    its place among the bank's answers (`returned_at`)."""
    row = await _mark_returned(conn, e, read_at)
    if row is None:
        # Locked, so that a settlement applied at the same time by another process either
        # is seen here (then settled) or finds the waiting return after its own update.
        payment = await conn.fetchrow(
            "SELECT status, amount_cents FROM payments WHERE payment_id = $1 FOR UPDATE",
            e.payment_id,
        )
        if payment is not None and payment["status"] == "settled":
            row = await _mark_returned(conn, e, read_at)  # settled meanwhile
        elif (
            payment is not None
            and payment["status"] == "requested"
            and payment["amount_cents"] == e.amount_cents
            and read_at is None
        ):
            await waiting_returns.keep(conn, incoming)
            return None
    if row is None:
        return await _unmatched(conn, incoming, e)
    await _trace_claims(conn, e.payment_id, "claim payment returned")
    amount = int(row["amount_cents"])
    await ledger.post(
        conn,
        [
            ledger.Transfer(
                uuid7(),
                ledger.BANK,
                row["account"],
                amount,
                "payment_returned",
                payment_id=e.payment_id,
            )
        ],
    )
    await _unlink_claims(conn, e.payment_id)
    log.info(
        "payment returned",
        payment_id=str(e.payment_id),
        amount_cents=amount,
        reason_code=e.reason_code,
        **({} if read_at is None else {"waited_for_settlement_since": read_at.isoformat()}),
    )
    return None


async def _mark_returned(
    conn: DbConnection, e: PaymentReturned, read_at: datetime | None
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE payments SET status = 'returned', reason = $2, reason_code = $3,"
        " returned_at = coalesce($5::timestamptz, now()) WHERE payment_id = $1"
        " AND status = 'settled' AND amount_cents = $4 RETURNING account, amount_cents",
        e.payment_id,
        e.reason,
        e.reason_code,
        e.amount_cents,
        read_at,
    )


async def _unlink_claims(conn: DbConnection, payment_id: uuid.UUID) -> None:
    """The payment paid nothing after all: its claims are the next run's to pay."""
    await conn.execute("UPDATE claims SET payment_id = NULL WHERE payment_id = $1", payment_id)


_STATUS_OF: dict[type[EventPayload], str] = {
    PaymentSettled: "settled",
    PaymentFailed: "failed",
    PaymentReturned: "returned",
}


async def _unmatched(
    conn: DbConnection,
    incoming: Incoming[Any],
    e: PaymentSettled | PaymentFailed | PaymentReturned,
) -> DeadLetter | None:
    """Why an answer changed nothing: a repeat (fine), or one that matches no payment,
    contradicts the answer that closed it (the first answer stands) or returns a payment
    that failed (or, of another amount, one not settled yet)."""
    payment = await conn.fetchrow(
        "SELECT status, amount_cents FROM payments WHERE payment_id = $1", e.payment_id
    )
    status = _STATUS_OF[type(e)]
    # A returned payment was settled first: its settlement sent again is a repeat too.
    repeated = (status, "returned") if status == "settled" else (status,)
    if payment is not None and payment["status"] in repeated:
        log.info("payment answer repeated: already applied", payment_id=str(e.payment_id))
        return None
    if payment is None:
        detail = f"no payment {e.payment_id}"
    elif status == "returned" and payment["status"] == "requested":
        # Of the payment's amount, it would have waited for the settlement.
        detail = (
            f"amount {e.amount_cents} cents differs from the payment's"
            f" {payment['amount_cents']}, which is not settled yet"
        )
    elif status == "returned" and payment["status"] != "settled":
        detail = (
            f"the payment is {payment['status']}, not settled: only a settled payment"
            " can be returned"
        )
    elif status != "returned" and payment["status"] != "requested":
        detail = f"the payment was {payment['status']} before; this answer says {status}"
    else:
        detail = (
            f"amount {e.amount_cents} cents differs from the payment's {payment['amount_cents']}"
        )
    log.warning("payment answer matches no payment", payment_id=str(e.payment_id), detail=detail)
    return DeadLetter(incoming.source, DeadLetterReason.UNMATCHED, detail)
