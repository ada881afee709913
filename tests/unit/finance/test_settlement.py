"""`vtp finance settle`: the status file is read as Excel saves it, and an answer that
contradicts an earlier one is refused, not sent: claims keeps the first answer, and the book
would say otherwise."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from shared.events.payments import PaymentFailed, PaymentReturned, PaymentSettled
from tests.support.payments import payment_requested
from vtp.finance.book import PaymentBook
from vtp.finance.settlement import (
    Answer,
    Outcome,
    SettleFileError,
    SettleResult,
    answer_events,
    parse_status_file,
    status_file_text,
)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(
            "payment_id,status,reason_code,bank_reference\n{a},settled,,\n{b},RJCT,AC01,\n",
            id="as written",
        ),
        pytest.param(
            "\ufeffpayment_id,status,reason_code,bank_reference\r\n"
            "{a},settled,,\r\n{b},RJCT,AC01,\r\n",
            id="CSV UTF-8, with a byte-order mark",
        ),
        pytest.param(
            "payment_id;status;reason_code;bank_reference\r\n{a};settled;;\r\n{b};RJCT;AC01;\r\n",
            id="a Belgian locale's CSV, with semicolons",
        ),
    ],
)
def test_the_status_file_is_read_as_excel_saves_it(text: str) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    answers = parse_status_file(text.format(a=a, b=b))
    assert [(x.payment_id, x.outcome, x.reason_code) for x in answers] == [
        (a, Outcome.SETTLED, ""),
        (b, Outcome.FAILED, "AC01"),
    ]


def test_an_answer_contradicting_an_earlier_one_is_not_sent(tmp_path: Path) -> None:
    book = PaymentBook(tmp_path / "payments.sqlite")
    ids = [uuid.uuid4() for _ in range(3)]
    with book.transaction():
        book.add_requested([payment_requested(i) for i in ids])
        book.mark_exported(ids, "pain001.xml")
        book.mark_answered(ids[0], "failed", "2026-03-10T09:00:00+00:00")
        book.mark_answered(ids[1], "settled", "2026-03-10T09:00:00+00:00")
    result = SettleResult()
    events = answer_events(
        book,
        [
            Answer(ids[0], Outcome.SETTLED, "", ""),  # failed before, now settled
            Answer(ids[1], Outcome.SETTLED, "", ""),  # settled again: a harmless repeat
            Answer(ids[2], Outcome.FAILED, "AC01", ""),
        ],
        result,
    )
    book.close()
    answers = [p for _, p in events if isinstance(p, PaymentSettled | PaymentFailed)]
    assert len(answers) == len(events)
    assert [(type(p), p.payment_id) for p in answers] == [
        (PaymentSettled, ids[1]),
        (PaymentFailed, ids[2]),
    ]
    assert result.contradicted == [str(ids[0])]
    assert (result.settled, result.failed, result.already_answered) == (1, 1, 1)


def test_a_status_file_excel_saved_in_the_windows_code_page_is_read() -> None:
    a = uuid.uuid4()
    raw = f"payment_id;status;reason_code;bank_reference\r\n{a};settled;;Crédit 1\r\n".encode(
        "cp1252"
    )
    [answer] = parse_status_file(status_file_text(raw))
    assert (answer.payment_id, answer.outcome, answer.bank_reference) == (
        a,
        Outcome.SETTLED,
        "Crédit 1",
    )
    assert status_file_text("é".encode()) == "é"  # UTF-8 stays UTF-8


def test_an_answer_for_a_payment_never_exported_is_not_sent(tmp_path: Path) -> None:
    book = PaymentBook(tmp_path / "payments.sqlite")
    pending, exported = uuid.uuid4(), uuid.uuid4()
    with book.transaction():
        book.add_requested([payment_requested(pending), payment_requested(exported)])
        book.mark_exported([exported], "pain001.xml")
    result = SettleResult()
    events = answer_events(
        book,
        [Answer(pending, Outcome.SETTLED, "", ""), Answer(exported, Outcome.SETTLED, "", "")],
        result,
    )
    book.close()
    assert [p.payment_id for _, p in events if isinstance(p, PaymentSettled)] == [exported]
    assert result.not_exported == [str(pending)]


def test_a_return_is_read_with_its_reason_code() -> None:
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    answers = parse_status_file(
        "payment_id,status,reason_code,bank_reference\n"
        f"{a},returned,ac04,R-1\n{b},RTRN,MD07,\n{c},returned,,\n"
    )
    assert [(x.payment_id, x.outcome, x.reason_code) for x in answers] == [
        (a, Outcome.RETURNED, "AC04"),
        (b, Outcome.RETURNED, "MD07"),
        (c, Outcome.RETURNED, "MS03"),  # the bank gave no reason
    ]


def test_a_status_neither_settled_failed_nor_returned_is_refused() -> None:
    with pytest.raises(SettleFileError, match="line 2: status 'teruggestort'"):
        parse_status_file(f"payment_id,status\n{uuid.uuid4()},teruggestort\n")


def test_only_a_payment_the_book_has_as_settled_is_returned(tmp_path: Path) -> None:
    book = PaymentBook(tmp_path / "payments.sqlite")
    settled, returned, failed, exported = ids = [uuid.uuid4() for _ in range(4)]
    with book.transaction():
        book.add_requested([payment_requested(i) for i in ids])
        book.mark_exported(ids, "pain001.xml")
        book.mark_answered(settled, "settled", "2026-03-10T09:00:00+00:00")
        book.mark_answered(returned, "returned", "2026-03-20T09:00:00+00:00", "AC04")
        book.mark_answered(failed, "failed", "2026-03-10T09:00:00+00:00", "AM04")
    result = SettleResult()
    events = answer_events(
        book,
        [
            Answer(settled, Outcome.RETURNED, "AC04", ""),
            Answer(returned, Outcome.RETURNED, "AC04", ""),  # a repeat: harmless
            Answer(returned, Outcome.SETTLED, "", ""),  # the old file settled again
            Answer(failed, Outcome.RETURNED, "AC04", ""),
            Answer(exported, Outcome.RETURNED, "AC04", ""),
        ],
        result,
    )
    again = answer_events(book, [Answer(settled, Outcome.RETURNED, "AC04", "")], SettleResult())
    book.close()
    sent = [p for _, p in events if isinstance(p, PaymentReturned)]
    assert len(sent) == len(events)
    assert [p.payment_id for p in sent] == [settled, returned]
    [(envelope, first), _] = events
    assert isinstance(first, PaymentReturned)
    assert (first.amount_cents, first.reason_code, first.reason) == (
        1250,
        "AC04",
        "rekening afgesloten",
    )
    # Derived from payment and answer: the same file settled twice sends the same event.
    assert envelope.id == again[0][0].id
    assert result.returned_unsettled == [str(failed), str(exported)]
    assert (result.returned, result.already_answered, result.contradicted) == (2, 2, [])


def test_a_settled_payment_the_bank_rejects_later_is_to_be_reported_returned(
    tmp_path: Path,
) -> None:
    """ "The first answer stands" left the ledger saying paid for money that never left
    (an ACCP line taken as settled, then RJCT): finance is told to report a return."""
    book = PaymentBook(tmp_path / "payments.sqlite")
    settled, failed = uuid.uuid4(), uuid.uuid4()
    with book.transaction():
        book.add_requested([payment_requested(settled), payment_requested(failed)])
        book.mark_exported([settled, failed], "pain001.xml")
        book.mark_answered(settled, "settled", "2026-03-10T09:00:00+00:00")
        book.mark_answered(failed, "failed", "2026-03-10T09:00:00+00:00", "AM04")
    result = SettleResult()
    events = answer_events(
        book,
        [Answer(settled, Outcome.FAILED, "AM04", ""), Answer(failed, Outcome.SETTLED, "", "")],
        result,
    )
    book.close()
    assert events == []
    assert result.failed_after_settled == [str(settled)]
    assert result.contradicted == [str(failed)]


def test_rows_excel_leaves_empty_are_skipped_and_errors_name_the_true_line() -> None:
    a = uuid.uuid4()
    [answer] = parse_status_file(
        f"payment_id;status;reason_code;bank_reference\r\n{a};settled;;\r\n;;;\r\n ; ; ; \r\n"
    )
    assert answer.payment_id == a
    with pytest.raises(SettleFileError, match="line 4: payment_id is not a UUID"):
        parse_status_file(f"payment_id,status\n{a},settled\n\nnot-an-id,settled\n")
