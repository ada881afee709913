"""A provider's account the bank refused for the account's sake is not paid again: the
provider's next payment requests wait (named, with what to do) until finance registers
another account, and the first export after that pays them. A refusal for another reason
is paid again to the same account."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from shared.events.claims import PayeeKind
from tests.support.payments import payment_requested
from vtp.finance import settlement
from vtp.finance.book import PaymentBook
from vtp.finance.export import CreditorRegister, ExportResult, export_pending
from vtp.finance.refusals import PaidAnswer, refused_accounts
from vtp.finance.sepa import Debtor
from vtp.finance.settlement import Answer, Outcome, settle

DEBTOR = Debtor("Gemeente Heist-op-den-Berg", "BE68539007547034", "GKCCBEBB")
CLOSED = "BE71096123456769"
ANOTHER = "BE62510007547061"


class Finance:
    """Finance's book and register in a folder, with the bank's answers reported through
    `settle` (to a producer that only collects what it is given)."""

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.folder = folder
        self.register = CreditorRegister(folder / "creditors.json")
        self.provider = uuid.uuid4()
        self.register.put(self.provider, "Sportclub vzw", CLOSED)
        monkeypatch.setattr(settlement, "make_producer", lambda *_, **__: _Producer())

    def requested(self) -> uuid.UUID:
        payment = payment_requested(payee_kind=PayeeKind.PROVIDER, payee_id=self.provider)
        book = PaymentBook(self.folder / "payments.sqlite")
        with book.transaction():
            book.add_requested([payment])
        book.close()
        return payment.payment_id

    def export(self) -> tuple[ExportResult, dict[str, str]]:
        """The export, and the IBAN each payment in its file goes to."""
        book = PaymentBook(self.folder / "payments.sqlite")
        try:
            result = export_pending(
                book, self.folder / "exports", DEBTOR, "finance's key", self.register
            )
        finally:
            book.close()
        paid = {}
        if result.file is not None:
            xml = result.file.read_text()
            for end_to_end, iban in re.findall(
                r"<EndToEndId>(.*?)</EndToEndId>.*?<IBAN>(.*?)</IBAN>", xml, re.S
            ):
                paid[str(uuid.UUID(end_to_end))] = iban
        return result, paid

    def answer(self, payment_id: uuid.UUID, outcome: Outcome, reason_code: str = "") -> None:
        book = PaymentBook(self.folder / "payments.sqlite")
        try:
            asyncio.run(settle("unused:1", book, [Answer(payment_id, outcome, reason_code, "")]))
        finally:
            book.close()


class _Producer:
    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send_and_wait(self, *_: Any, **__: Any) -> None:
        pass


@pytest.fixture
def finance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Finance:
    return Finance(tmp_path, monkeypatch)


@pytest.mark.parametrize(
    "answers",
    [
        pytest.param([(Outcome.FAILED, "AC04")], id="refused: account closed"),
        pytest.param([(Outcome.FAILED, "RC01")], id="refused: wrong bank code"),
        pytest.param(
            [(Outcome.SETTLED, ""), (Outcome.RETURNED, "MD07")], id="returned: holder deceased"
        ),
    ],
)
def test_an_account_refused_for_its_own_sake_waits_for_another(
    finance: Finance, answers: list[tuple[Outcome, str]]
) -> None:
    first = finance.requested()
    _, paid = finance.export()
    assert paid == {str(first): CLOSED}
    for outcome, code in answers:
        finance.answer(first, outcome, code)

    # Claims asks again (the amount is payable again): finance holds it, every export.
    again = finance.requested()
    for _ in range(2):
        held, paid = finance.export()
        assert (held.file, paid) == (None, {})
        assert [(r.payment.payment_id, r.reason_code) for r in held.account_refused] == [
            (again, answers[-1][1])
        ]

    # Finance registers another account: the next export pays the provider there.
    finance.register.put(finance.provider, "Sportclub vzw", ANOTHER)
    result, paid = finance.export()
    assert paid == {str(again): ANOTHER}
    assert result.account_refused == []


@pytest.mark.parametrize("code", ["MS03", "AM04"])
def test_a_refusal_not_about_the_account_is_paid_again_to_it(finance: Finance, code: str) -> None:
    first = finance.requested()
    finance.export()
    finance.answer(first, Outcome.FAILED, code)
    again = finance.requested()
    result, paid = finance.export()
    assert paid == {str(again): CLOSED}
    assert result.account_refused == []


def test_the_same_account_registered_anew_is_still_refused(finance: Finance) -> None:
    first = finance.requested()
    finance.export()
    finance.answer(first, Outcome.FAILED, "AC04")
    finance.register.put(finance.provider, "Sportclub vzw", "be71 0961 2345 6769")  # CLOSED
    finance.requested()
    result, paid = finance.export()
    assert paid == {}
    assert len(result.account_refused) == 1


def test_an_account_refused_and_paid_since_is_not_refused() -> None:
    answers = [
        PaidAnswer("a", "failed", "AC06"),  # blocked ...
        PaidAnswer("b", "failed", "AC04"),
        PaidAnswer("a", "settled", None),  # ... and unblocked since
        PaidAnswer("c", "failed", "MS03"),
    ]
    assert refused_accounts(answers) == {"b": "AC04"}
