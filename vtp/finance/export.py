"""`vtp finance export`: take in new payment requests, open each payee's sealed name and
IBAN with finance's private key (or use finance's own creditor register), write one
validated pain.001.001.09 file and, beside it, the status file the bank's answer fills in.
An account the bank refused for the account's sake is not paid again (vtp/finance/refusals.py):
the payee's requests wait until finance registers another.

Names and IBANs exist only in the SEPA file itself; nothing is logged or printed."""

from __future__ import annotations

import csv
import io
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from schwifty import IBAN

from shared.localtime import business_day
from shared.private_files import write_private
from shared.sealing import SealError, unseal
from vtp.finance.book import BookedPayment, PaymentBook
from vtp.finance.refusals import account_key, refused_accounts
from vtp.finance.sepa import CreditTransfer, Debtor, build_pain001, execution_day, readable_name

STATUS_COLUMNS = ("payment_id", "status", "reason_code", "bank_reference")


@dataclass
class ExportResult:
    file: Path | None = None
    status_file: Path | None = None
    payments: int = 0
    total_cents: int = 0
    without_beneficiary: list[BookedPayment] = field(default_factory=list)
    # Kept pending: the name and IBAN came sealed, but not for the key this export used.
    sealed_for_another_key: list[BookedPayment] = field(default_factory=list)
    # Kept pending: every account finance knows for the payee is one the bank refused.
    account_refused: list[RefusedAccount] = field(default_factory=list)
    # Kept pending: no name finance knows for the payee says anything in the SEPA character
    # set (the bank needs one; one such transfer would break the whole file).
    unreadable_name: list[BookedPayment] = field(default_factory=list)
    # Files of an earlier export that was killed after it marked its payments exported and
    # before it named its files: finished now, to be sent to the bank.
    finished: list[Path] = field(default_factory=list)


class CreditorRefused(ValueError):
    """A name or account no bank would pay: nothing was recorded."""


@dataclass(frozen=True)
class RefusedAccount:
    payment: BookedPayment
    reason_code: str  # the bank's last reason for refusing the account, e.g. AC04


class CreditorRegister:
    """Finance's own master data for payees whose account did not come with the request
    (e.g. providers registered without one): `creditors.json`, payee id → name and IBAN."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, dict[str, str]]:
        if not self.path.exists():
            return {}
        data: dict[str, dict[str, str]] = json.loads(self.path.read_text())
        return data

    def get(self, payee_id: uuid.UUID) -> dict[str, str] | None:
        return self._load().get(str(payee_id))

    def put(self, payee_id: uuid.UUID, name: str, iban: str) -> None:
        """Raises schwifty's exception for a wrong IBAN, CreditorRefused for one outside the
        SEPA zone or a name without a letter or digit the bank can read."""
        account = IBAN(iban)
        if not account.in_sepa_zone:
            raise CreditorRefused(
                "the account is outside the SEPA zone: a SEPA transfer cannot pay it"
            )
        if not readable_name(name):
            raise CreditorRefused(
                "the name has no letters or digits a bank can read (a-z, 0-9): give it in Latin letters"
            )
        data = self._load()
        data[str(payee_id)] = {"name": name.strip(), "iban": str(account.compact)}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_private(self.path, json.dumps(data, indent=2).encode())  # names and IBANs


def beneficiaries(
    payment: BookedPayment, private_key: str, register: CreditorRegister
) -> list[dict[str, str]]:
    """Names and IBANs finance knows for the payee, best first: the one sealed in the
    request, then finance's own register (which is how finance replaces a refused one)."""
    found: list[dict[str, str]] = []
    if payment.beneficiary_sealed:
        try:
            opened = unseal(private_key, payment.beneficiary_sealed)
        except SealError:
            opened = {}
        if opened.get("name") and opened.get("iban"):
            found.append({"name": str(opened["name"]), "iban": str(opened["iban"])})
    registered = register.get(payment.payee_id)
    if registered is not None:
        found.append(registered)
    return found


def _transfers(
    book: PaymentBook, private_key: str, register: CreditorRegister, result: ExportResult
) -> list[tuple[CreditTransfer, str]]:
    """The pending payments finance can pay, each with the key of the account it goes to;
    the others are listed in `result`."""
    transfers: list[tuple[CreditTransfer, str]] = []
    refused: dict[uuid.UUID, dict[str, str]] = {}
    for payment in book.with_status("pending"):
        accounts = [
            (account_key(private_key, a["iban"]), a)
            for a in beneficiaries(payment, private_key, register)
        ]
        if not accounts:
            # A seal no one here can open is a wrong key, not a payee without an account.
            if payment.beneficiary_sealed:
                result.sealed_for_another_key.append(payment)
            else:
                result.without_beneficiary.append(payment)
            continue
        if payment.payee_id not in refused:
            refused[payment.payee_id] = refused_accounts(book.answers_to(payment.payee_id))
        usable = [(key, a) for key, a in accounts if key not in refused[payment.payee_id]]
        if not usable:
            reason = refused[payment.payee_id][accounts[0][0]]
            result.account_refused.append(RefusedAccount(payment, reason))
            continue
        named = [(key, a) for key, a in usable if readable_name(a["name"])]
        if not named:
            result.unreadable_name.append(payment)
            continue
        key, who = named[0]
        transfer = CreditTransfer(
            payment.payment_id, who["name"], who["iban"], payment.amount_cents, payment.remittance
        )
        transfers.append((transfer, key))
    return transfers


def export_pending(
    book: PaymentBook,
    out_dir: Path,
    debtor: Debtor,
    private_key: str,
    register: CreditorRegister,
    execution_date: date | None = None,
) -> ExportResult:
    result = ExportResult()
    written: list[Path] = []
    try:
        # Read and marked in one locked transaction: two exports at once would each write
        # a file paying the same requests.
        with book.exclusive():
            result.finished = _finish_interrupted(book, out_dir)
            paying = _transfers(book, private_key, register, result)
            transfers = [t for t, _ in paying]
            if not transfers:
                return result
            now = datetime.now(UTC)
            stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
            out_dir.mkdir(parents=True, exist_ok=True)
            # Today in Belgium: before 01:00 or 02:00 local time the UTC date is yesterday's,
            # a requested execution date in the past. On a weekend or a TARGET holiday, the
            # next business day.
            day = execution_date or execution_day(business_day(now))
            xml = build_pain001(debtor, transfers, day)
            result.file = out_dir / f"pain001-{stamp}.xml"
            result.status_file = out_dir / f"pain001-{stamp}.status.csv"
            # Under a name no one sends to a bank until the book says exported: a process
            # killed before the commit leaves no file paying what the next export pays.
            written.append(_partial(result.file))
            write_private(written[-1], xml)  # it holds names and IBANs
            rows = io.StringIO(newline="")
            writer = csv.writer(rows)
            writer.writerow(STATUS_COLUMNS)
            for t in transfers:
                # Pre-filled as executed; finance edits the rows the bank rejected.
                writer.writerow((str(t.payment_id), "settled", "", ""))
            written.append(_partial(result.status_file))
            written[-1].write_bytes(rows.getvalue().encode())
            for path in written:
                _sync(path)
            book.mark_exported(
                [t.payment_id for t in transfers],
                result.file.name,
                {t.payment_id: key for t, key in paying},
            )
    except BaseException:
        # The requests are still pending: a file left behind would pay them a second time
        # beside the next export's.
        for path in written:
            path.unlink(missing_ok=True)
        raise
    # Committed: the files are the export's (killed before this, the next export finishes it).
    for path in written:
        _publish(path)
    result.payments = len(transfers)
    result.total_cents = sum(t.amount_cents for t in transfers)
    return result


_PARTIAL = ".partial"


def _partial(path: Path) -> Path:
    return path.with_name(path.name + _PARTIAL)


def _sync(path: Path) -> None:
    """On disk before the book says exported: a power cut must not leave an empty file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(partial: Path) -> Path:
    final = partial.with_name(partial.name.removesuffix(_PARTIAL))
    try:
        os.replace(partial, final)
    except FileNotFoundError:
        if not final.exists():  # another export finished it first (_finish_interrupted)
            raise
    return final


def _finish_interrupted(book: PaymentBook, out_dir: Path) -> list[Path]:
    """The files of an export killed half-way: those the book has as exported (killed
    after the commit) get their names, the others (killed before it: their payments are
    still pending) are removed. Returns the credit-transfer files finished."""
    if not out_dir.is_dir():
        return []
    exported = book.export_files()
    finished = []
    for partial in sorted(out_dir.glob(f"pain001-*{_PARTIAL}")):
        final = partial.name.removesuffix(_PARTIAL)
        if final.removesuffix(".status.csv").removesuffix(".xml") + ".xml" in exported:
            published = _publish(partial)
            if published.suffix == ".xml":
                finished.append(published)
        else:
            partial.unlink(missing_ok=True)
    return finished
