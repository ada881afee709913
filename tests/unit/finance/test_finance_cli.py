"""`vtp finance`'s messages and exit codes where something needs the user: a payment request
that could not be read, payees whose account finance lacks, answers that were not sent, a
month the report cannot have."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner, Result

from shared.events.claims import PayeeKind
from shared.sealing import generate_keypair, seal
from tests.support.payments import payment_requested
from vtp.finance import cli
from vtp.finance.book import BookedPayment, PaymentBook
from vtp.finance.export import ExportResult, RefusedAccount
from vtp.finance.intake import IntakeReport
from vtp.finance.sepa import Debtor
from vtp.finance.settlement import SettleResult
from vtp.locate import console


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 400)  # one message, one line


OUR_ACCOUNT = {
    "VTP_FINANCE_DEBTOR_NAME": "Gemeente Heist-op-den-Berg",
    "VTP_FINANCE_DEBTOR_IBAN": "BE68539007547034",
    "VTP_FINANCE_DEBTOR_BIC": "GKCCBEBB",
}


@pytest.fixture(autouse=True)
def _our_account(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in OUR_ACCOUNT.items():
        monkeypatch.setenv(name, value)


@pytest.mark.parametrize(
    ("field", "said"),
    [
        ("unknown", "are not in finance's book"),
        ("not_exported", "were never exported"),
        ("contradicted", "were answered otherwise before: the first answer stands"),
        ("returned_unsettled", "are returned but were never settled"),
        (
            "failed_after_settled",
            "were settled before: if the bank did not pay them after all, report them as"
            " `returned` with its reason code",
        ),
    ],
)
def test_settle_names_the_lines_it_did_not_send_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str, said: str
) -> None:
    skipped = str(uuid.uuid4())

    async def settled(*_: object) -> SettleResult:
        result = SettleResult(settled=1)
        getattr(result, field).append(skipped)
        return result

    monkeypatch.setattr(cli, "settle", settled)
    status_file = tmp_path / "answers.csv"
    status_file.write_text(f"payment_id,status\n{skipped},settled\n")
    result = CliRunner().invoke(
        cli.finance_app,
        ["settle", str(status_file), "--state-dir", str(tmp_path), "--bootstrap-servers", "x:1"],
    )
    assert result.exit_code == 1, result.output
    assert said in result.output and skipped in result.output


def _export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, intake: IntakeReport) -> Result:
    """`vtp finance export` on the book in `tmp_path`, with Kafka's intake as given."""

    async def read(*_: object, **__: object) -> IntakeReport:
        return intake

    monkeypatch.setattr(cli, "take_in", read)
    monkeypatch.setenv("VTP_FINANCE_PRIVATE_KEY", "unused: nothing is sealed")
    return CliRunner().invoke(
        cli.finance_app,
        ["export", "--state-dir", str(tmp_path), "--bootstrap-servers", "x:1"],
    )


def test_export_says_when_a_payment_request_could_not_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _export(tmp_path, monkeypatch, IntakeReport(received=2, new=1, undecodable=1))
    assert result.exit_code == 0, result.output
    assert "1 payment request(s) could not be read" in result.output
    assert "vtp deadletters redrive --consumer finance" in result.output


def test_export_names_the_payees_whose_account_finance_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payee = uuid.uuid4()
    book = PaymentBook(tmp_path / "finance" / "payments.sqlite")
    with book.transaction():
        book.add_requested([payment_requested(payee_kind=PayeeKind.PROVIDER, payee_id=payee)])
    book.close()
    result = _export(tmp_path, monkeypatch, IntakeReport())
    assert result.exit_code == 0, result.output
    assert "1 payment(s) kept pending" in result.output
    assert f"provider {payee}" in result.output


def test_export_names_the_payees_whose_account_the_bank_refused_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payee = uuid.uuid4()
    payment = BookedPayment(uuid.uuid4(), "provider", payee, 1250, "", "", None, "pending")
    refused = ExportResult(account_refused=[RefusedAccount(payment, "AC04")])
    monkeypatch.setattr(cli, "export_pending", lambda *_, **__: refused)
    result = _export(tmp_path, monkeypatch, IntakeReport())
    assert result.exit_code == 0, result.output
    assert "1 payment(s) kept pending: the bank refused the payee's account" in result.output
    assert "vtp finance creditor PAYEE_ID --name NAME --iban IBAN" in result.output
    assert f"provider {payee} (AC04)" in result.output


def test_report_for_a_month_written_otherwise_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def claims_api(url: str, **_: object) -> httpx.Response:
        # What the claims API answers for a month that is not YYYY-MM.
        return httpx.Response(422, json={"detail": []}, request=httpx.Request("GET", url))

    monkeypatch.setattr(httpx, "get", claims_api)
    result = CliRunner().invoke(
        cli.finance_app,
        ["report", "--month", "2026-3", "--claims-url", "http://claims", "--token", "t"],
    )
    assert result.exit_code == 2, result.output
    assert "'2026-3': expected YYYY-MM, e.g. 2026-03" in result.output


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["export"], "no payment requests read, no file written"),
        (["settle", "{file}"], "the book is unchanged, and sending the same file again is safe"),
    ],
)
def test_a_broker_that_does_not_answer_is_one_line_and_exit_1_not_a_traceback(
    tmp_path: Path, command: list[str], said: str
) -> None:
    status_file = tmp_path / "answers.csv"
    status_file.write_text(f"payment_id,status\n{uuid.uuid4()},settled\n")
    args = [a.format(file=status_file) for a in command]
    result = CliRunner().invoke(
        cli.finance_app,
        # Port 1 on loopback: nothing listens there, the connection is refused at once.
        [*args, "--state-dir", str(tmp_path), "--bootstrap-servers", "127.0.0.1:1"],
    )
    assert result.exit_code == 1, result.output
    assert "the broker at 127.0.0.1:1 does not answer (KafkaConnectionError)" in result.output
    assert said in result.output
    assert not (tmp_path / "finance" / "exports").exists() or not any(
        (tmp_path / "finance" / "exports").iterdir()
    )


def test_export_without_the_account_to_pay_from_refuses_before_reading_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It had a default: an example account, which a real export would have paid from."""
    for name in OUR_ACCOUNT:
        monkeypatch.delenv(name)
    read: list[object] = []
    monkeypatch.setattr(cli, "take_in", lambda *a, **_: read.append(a))
    result = CliRunner().invoke(
        cli.finance_app, ["export", "--state-dir", str(tmp_path), "--bootstrap-servers", "x:1"]
    )
    assert result.exit_code == 2, result.output
    assert "vtp finance debtor --name NAME --iban IBAN --bic BIC" in result.output
    assert read == [] and not (tmp_path / "finance" / "exports").exists()


DEBTOR = ("debtor", "--name")
ONE_OF_OURS = "be68 5390 0754 7034"  # as typed: spaces, lower case
OUR_NAME = OUR_ACCOUNT["VTP_FINANCE_DEBTOR_NAME"]


def _in(state: Path) -> tuple[str, str]:
    return ("--state-dir", str(state))


def test_the_recorded_account_is_the_one_exports_pay_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in OUR_ACCOUNT:
        monkeypatch.delenv(name)
    runner = CliRunner()
    bad = runner.invoke(
        cli.finance_app,
        [*DEBTOR, "Gemeente", "--iban", "BE00 0000", "--bic", "GKCCBEBB", *_in(tmp_path)],
    )
    assert bad.exit_code == 2 and "nothing recorded" in bad.output
    assert "BE00" not in bad.output  # the reason, never the number
    recorded = runner.invoke(
        cli.finance_app,
        [*DEBTOR, OUR_NAME, "--iban", ONE_OF_OURS, "--bic", "gkccbebb", *_in(tmp_path)],
    )
    assert recorded.exit_code == 0, recorded.output
    used: list[Debtor] = []

    def export_pending(_book: object, _out: object, debtor: Debtor, *_: object) -> ExportResult:
        used.append(debtor)
        return ExportResult()

    monkeypatch.setattr(cli, "export_pending", export_pending)
    result = _export(tmp_path, monkeypatch, IntakeReport())
    assert result.exit_code == 0, result.output
    assert used == [Debtor(OUR_NAME, "BE68539007547034", "GKCCBEBB")]


def test_export_says_when_the_accounts_are_sealed_for_another_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It said "no name and IBAN known; add them with `vtp finance creditor`": finance would
    have typed in every payee's account by hand instead of fixing the key."""
    _, others_public = generate_keypair()
    sealed = seal(others_public, {"name": "Jan Peeters", "iban": "BE71096123456769"})
    payment = payment_requested().model_copy(update={"beneficiary_sealed": sealed})
    book = PaymentBook(tmp_path / "finance" / "payments.sqlite")
    with book.transaction():
        book.add_requested([payment])
    book.close()
    result = _export(tmp_path, monkeypatch, IntakeReport())
    assert result.exit_code == 0, result.output
    assert "1 payment(s) kept pending: their name and IBAN are sealed for another key" in (
        result.output
    )
    assert "VTP_FINANCE_PRIVATE_KEY" in result.output
    assert "no name and IBAN known" not in result.output
