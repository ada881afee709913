"""`vtp finance export`: take in new payment requests, open each payee's sealed name and
IBAN with finance's private key (or use finance's own creditor register), write one
validated pain.001.001.09 file and, beside it, the status file the bank's answer fills in.
An account the bank refused for the account's sake is not paid again (vtp/finance/refusals.py):
the payee's requests wait until finance registers another.

Names and IBANs exist only in the SEPA file itself; nothing is logged or printed."""

from __future__ import annotations

import csv
import json
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
from vtp.finance.sepa import CreditTransfer, Debtor, build_pain001

STATUS_COLUMNS = ("payment_id", "status", "reason_code", "bank_reference")


@dataclass
class ExportResult:
    file: Path | None = None
    status_file: Path | None = None
    payments: int = 0
    total_cents: int = 0
    without_beneficiary: list[BookedPayment] = field(default_factory=list)
    # Kept pending: every account finance knows for the payee is one the bank refused.
    account_refused: list[RefusedAccount] = field(default_factory=list)


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
        data = self._load()
        data[str(payee_id)] = {"name": name, "iban": str(IBAN(iban).compact)}
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
            result.without_beneficiary.append(payment)
            continue
        if payment.payee_id not in refused:
            refused[payment.payee_id] = refused_accounts(book.answers_to(payment.payee_id))
        usable = [(key, a) for key, a in accounts if key not in refused[payment.payee_id]]
        if not usable:
            reason = refused[payment.payee_id][accounts[0][0]]
            result.account_refused.append(RefusedAccount(payment, reason))
            continue
        key, who = usable[0]
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
            paying = _transfers(book, private_key, register, result)
            transfers = [t for t, _ in paying]
            if not transfers:
                return result
            now = datetime.now(UTC)
            stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
            out_dir.mkdir(parents=True, exist_ok=True)
            # Today in Belgium: before 01:00 or 02:00 local time the UTC date is yesterday's,
            # a requested execution date in the past.
            xml = build_pain001(debtor, transfers, execution_date or business_day(now))
            result.file = out_dir / f"pain001-{stamp}.xml"
            written.append(result.file)
            write_private(result.file, xml)  # it holds names and IBANs
            result.status_file = out_dir / f"pain001-{stamp}.status.csv"
            written.append(result.status_file)
            with result.status_file.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(STATUS_COLUMNS)
                for t in transfers:
                    # Pre-filled as executed; finance edits the rows the bank rejected.
                    writer.writerow((str(t.payment_id), "settled", "", ""))
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
    result.payments = len(transfers)
    result.total_cents = sum(t.amount_cents for t in transfers)
    return result
