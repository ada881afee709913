"""`vtp finance …`: the finance department's commands."""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from pathlib import Path
from typing import NoReturn

import typer
from aiokafka.errors import KafkaError
from schwifty.exceptions import SchwiftyException

from shared.money import format_eur
from vtp.devstack.stack import read_keys
from vtp.finance.asyncapi import asyncapi_document
from vtp.finance.book import PaymentBook
from vtp.finance.debtor import DebtorMissing, checked, record, resolve
from vtp.finance.export import CreditorRefused, CreditorRegister, export_pending
from vtp.finance.intake import take_in
from vtp.finance.reports import write_report
from vtp.finance.sepa import Debtor
from vtp.finance.settlement import SettleFileError, parse_status_file, settle, status_file_text
from vtp.locate import (
    BOOTSTRAP_OPTION,
    STATE_OPTION,
    TOKEN_OPTION,
    broker_address,
    claims_report,
    console,
    state_folder,
)

finance_app = typer.Typer(help="Finance: pay the payment requests (SEPA) and report back.")


STATUS_FILE_ARGUMENT = typer.Argument(
    ..., exists=True, dir_okay=False, help="CSV: payment_id,status,reason_code,bank_reference"
)
REPORT_OUT_OPTION = typer.Option(Path("reports"), help="Folder for the XLSX and CSV files.")
ASYNCAPI_OUT_OPTION = typer.Option(None, help="Write here instead of standard output.")


def _private_key(state: Path) -> str:
    key = os.environ.get("VTP_FINANCE_PRIVATE_KEY")
    if key:
        return key
    try:
        return read_keys(state)["finance_private"]
    except (RuntimeError, KeyError) as exc:
        console.print(f"[red]no finance key[/]: set VTP_FINANCE_PRIVATE_KEY ({exc})")
        raise typer.Exit(2) from exc


def _book(state: Path) -> PaymentBook:
    return PaymentBook(state / "finance" / "payments.sqlite")


DEBTOR_NAME_OPTION = typer.Option(
    None, envvar="VTP_FINANCE_DEBTOR_NAME", help="Our account's name (else `vtp finance debtor`'s)."
)
DEBTOR_IBAN_OPTION = typer.Option(
    None, envvar="VTP_FINANCE_DEBTOR_IBAN", help="Our account, the debtor (else the recorded one)."
)
DEBTOR_BIC_OPTION = typer.Option(
    None, envvar="VTP_FINANCE_DEBTOR_BIC", help="Our bank's BIC (else the recorded one)."
)


def _debtor(state: Path, name: str | None, iban: str | None, bic: str | None) -> Debtor:
    try:
        return resolve(state, name, iban, bic)
    except DebtorMissing as exc:
        console.print(f"[red]{exc}[/]; nothing read, no file written")
        raise typer.Exit(2) from exc
    except (SchwiftyException, ValueError) as exc:
        console.print(f"[red]the account to pay from is not valid[/]: {_why(exc)}; no file written")
        raise typer.Exit(2) from exc


def _why(exc: Exception) -> str:
    """The reason only: an IBAN is personal data (ours is not, but a payee's would be), and
    schwifty quotes some of them."""
    if isinstance(exc, SchwiftyException):
        return re.sub(r"(?<!^)(?=[A-Z])", " ", type(exc).__name__).lower()
    return str(exc)


def _broker_unreachable(address: str, exc: KafkaError, what: str) -> NoReturn:
    """The broker is away: said in one line, not a traceback; nothing half done."""
    console.print(
        f"[red]the broker at {address} does not answer[/] ({type(exc).__name__}): {what}."
        " Try again once it is back (`vtp status` shows it)."
    )
    raise typer.Exit(1) from exc


@finance_app.command()
def export(
    state_dir: Path | None = STATE_OPTION,
    bootstrap_servers: str | None = BOOTSTRAP_OPTION,
    debtor_name: str | None = DEBTOR_NAME_OPTION,
    debtor_iban: str | None = DEBTOR_IBAN_OPTION,
    debtor_bic: str | None = DEBTOR_BIC_OPTION,
    idle_s: float = typer.Option(3.0, help="Stop reading Kafka after this many quiet seconds."),
) -> None:
    """Read new payment requests from Kafka and write a pain.001.001.09 file for them."""
    state = state_folder(state_dir)
    # Before anything is read: without the account to pay from there is no file to write.
    paying = _debtor(state, debtor_name, debtor_iban, debtor_bic)
    address = broker_address(state, bootstrap_servers)
    book = _book(state)
    try:
        try:
            intake = asyncio.run(take_in(address, book, idle_s=idle_s))
        except KafkaError as exc:
            # No file without the newest requests: a run's requests belong in one file.
            _broker_unreachable(address, exc, "no payment requests read, no file written")
        result = export_pending(
            book,
            state / "finance" / "exports",
            paying,
            _private_key(state),
            CreditorRegister(state / "finance" / "creditors.json"),
        )
    finally:
        book.close()
    console.print(f"payment requests read: {intake.received} ({intake.new} new)")
    if intake.undecodable:
        console.print(
            f"[red]{intake.undecodable} payment request(s) could not be read[/] and were"
            " dead-lettered (`vtp deadletters list`); once this tool reads them, send them"
            " back with `vtp deadletters redrive --consumer finance`"
        )
    for path in result.finished:
        console.print(
            f"[yellow]an earlier export was stopped before it could name its file; it is"
            f" finished now: send {path} to the bank too[/] (its payments are in no other file)"
        )
    if result.sealed_for_another_key:
        console.print(
            f"[red]{len(result.sealed_for_another_key)} payment(s) kept pending: their name and"
            " IBAN are sealed for another key than the one this export used[/]: check"
            " VTP_FINANCE_PRIVATE_KEY (or the stack's keys) and export again; do not register"
            " these payees by hand"
        )
    if result.without_beneficiary:
        console.print(
            f"[yellow]{len(result.without_beneficiary)} payment(s) kept pending: no name and IBAN"
            " known; add them with `vtp finance creditor PAYEE_ID`[/] for these payees:"
        )
        # The opaque ids only: they are what the register is keyed by.
        for kind, payee in sorted(
            {(p.payee_kind, str(p.payee_id)) for p in result.without_beneficiary}
        ):
            console.print(f"  {kind} {payee}")
    if result.account_refused:
        console.print(
            f"[yellow]{len(result.account_refused)} payment(s) kept pending: the bank refused"
            " the payee's account; register another with `vtp finance creditor PAYEE_ID"
            " --name NAME --iban IBAN` and the next export pays them[/] for these payees:"
        )
        for kind, payee, code in sorted(
            {
                (r.payment.payee_kind, str(r.payment.payee_id), r.reason_code)
                for r in result.account_refused
            }
        ):
            console.print(f"  {kind} {payee} ({code})")
    if result.unreadable_name:
        console.print(
            f"[yellow]{len(result.unreadable_name)} payment(s) kept pending: the payee's name has"
            " no letters or digits a bank can read; register it in Latin letters with `vtp"
            " finance creditor PAYEE_ID --name NAME --iban IBAN` and the next export pays them[/]"
            " for these payees:"
        )
        for kind, payee in sorted(
            {(p.payee_kind, str(p.payee_id)) for p in result.unreadable_name}
        ):
            console.print(f"  {kind} {payee}")
    if result.file is None:
        console.print("nothing to pay")
        return
    console.print(
        f"[green]{result.payments} payment(s), {format_eur(result.total_cents)}[/] in {result.file}"
    )
    console.print(f"bank answer template: {result.status_file}")
    typer.echo(str(result.file))


@finance_app.command("settle")
def settle_command(
    status_file: Path = STATUS_FILE_ARGUMENT,
    state_dir: Path | None = STATE_OPTION,
    bootstrap_servers: str | None = BOOTSTRAP_OPTION,
) -> None:
    """Report the bank's answer back: PaymentSettled / PaymentFailed / PaymentReturned."""
    state = state_folder(state_dir)
    address = broker_address(state, bootstrap_servers)
    book = _book(state)
    try:
        answers = parse_status_file(status_file_text(status_file.read_bytes()))
        result = asyncio.run(settle(address, book, answers))
    except KafkaError as exc:
        _broker_unreachable(
            address, exc, "the book is unchanged, and sending the same file again is safe"
        )
    except SettleFileError as exc:
        console.print(f"[red]{status_file}: {exc}[/]")
        raise typer.Exit(1) from exc
    finally:
        book.close()
    console.print(f"settled {result.settled}, failed {result.failed}, returned {result.returned}")
    if result.already_answered:
        console.print(f"{result.already_answered} were answered before (harmless)")
    # Each line not sent is named: finance corrects the file and sends those lines again.
    not_sent = (
        (result.unknown, "are not in finance's book (a typo, or another municipality's file)"),
        (result.not_exported, "were never exported, so no bank can have paid them"),
        (result.contradicted, "were answered otherwise before: the first answer stands"),
        (
            result.failed_after_settled,
            "were settled before: if the bank did not pay them after all, report them as"
            " `returned` with its reason code (claims then pays them again)",
        ),
        (
            result.returned_unsettled,
            "are returned but were never settled: a bank returns only what it paid",
        ),
    )
    for ids, why in not_sent:
        if ids:
            console.print(f"[red]{len(ids)} payment(s) {why}[/]; not sent: {', '.join(ids)}")
    if any(ids for ids, _ in not_sent):
        raise typer.Exit(1)


@finance_app.command()
def creditor(
    payee_id: uuid.UUID,
    name: str = typer.Option(..., help="Account holder's name."),
    iban: str = typer.Option(..., help="IBAN."),
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """Record a payee's name and IBAN in finance's own register (also how to replace an
    account the bank refused: the next export pays the payee's waiting payments there)."""
    try:
        CreditorRegister(state_folder(state_dir) / "finance" / "creditors.json").put(
            payee_id, name, iban
        )
    except SchwiftyException as exc:
        console.print(f"[red]not a valid IBAN[/]: {_why(exc)}; nothing recorded")
        raise typer.Exit(2) from exc
    except CreditorRefused as exc:
        console.print(f"[red]refused[/]: {exc}; nothing recorded")
        raise typer.Exit(2) from exc
    console.print("creditor recorded")


@finance_app.command()
def debtor(
    name: str = typer.Option(..., help="The municipality's account name, as the bank has it."),
    iban: str = typer.Option(..., help="The account finance pays from."),
    bic: str = typer.Option(..., help="Its bank's BIC."),
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """Record the municipality's own account, from which every export pays (once; again to
    change it)."""
    try:
        record(state_folder(state_dir), checked(name, iban, bic))
    except (SchwiftyException, ValueError) as exc:
        console.print(f"[red]not a valid account[/]: {_why(exc)}; nothing recorded")
        raise typer.Exit(2) from exc
    console.print("account to pay from recorded")


@finance_app.command()
def status(state_dir: Path | None = STATE_OPTION) -> None:
    """How many payments finance holds, per status."""
    book = _book(state_folder(state_dir))
    try:
        typer.echo(json.dumps(book.counts(), sort_keys=True))
    finally:
        book.close()


@finance_app.command()
def report(
    month: str = typer.Option(..., help="YYYY-MM"),
    out: Path = REPORT_OUT_OPTION,
    claims_url: str | None = typer.Option(None, help="Claims API (default: the running stack)."),
    token: str | None = TOKEN_OPTION,
    state_dir: Path | None = STATE_OPTION,
) -> None:
    """Monthly report per payer and per provider, and budget consumption per budget line."""
    state = state_folder(state_dir)
    report = claims_report(
        state, claims_url, token, "/reports/monthly", ("month", month), "YYYY-MM, e.g. 2026-03"
    )
    for path in write_report(report, out):
        typer.echo(str(path))


@finance_app.command()
def asyncapi(
    out: Path | None = ASYNCAPI_OUT_OPTION,
) -> None:
    """The AsyncAPI 3.0 document of every topic."""
    text = json.dumps(asyncapi_document(), indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text)
