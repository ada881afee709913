"""The municipality's own account, from which finance pays: recorded once with `vtp finance
debtor` (`<state>/finance/debtor.json`), or given to each export. There is no default: an
export that forgot it would write a file paying from an example account."""

from __future__ import annotations

import json
from pathlib import Path

from schwifty import BIC, IBAN

from shared.private_files import write_private
from vtp.finance.sepa import Debtor, readable_name


class DebtorMissing(LookupError):
    """No account recorded and none given: nothing can be paid."""


def debtor_path(state: Path) -> Path:
    return state / "finance" / "debtor.json"


def checked(name: str, iban: str, bic: str) -> Debtor:
    """The account as the bank wants it (compact IBAN, upper-case BIC); a wrong IBAN or BIC
    raises schwifty's exception."""
    if not name.strip():
        raise ValueError("the account's name is empty")
    if not readable_name(name):
        raise ValueError("the account's name has no letters or digits a bank can read (a-z, 0-9)")
    return Debtor(name.strip(), str(IBAN(iban).compact), str(BIC(bic)))


def record(state: Path, debtor: Debtor) -> None:
    path = debtor_path(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"name": debtor.name, "iban": debtor.iban, "bic": debtor.bic}
    write_private(path, json.dumps(body, indent=2).encode())


def resolve(state: Path, name: str | None, iban: str | None, bic: str | None) -> Debtor:
    """The account given (all three parts), else the one recorded."""
    given = (name, iban, bic)
    if all(part is not None for part in given):
        assert name is not None and iban is not None and bic is not None
        return checked(name, iban, bic)
    if any(part is not None for part in given):
        raise DebtorMissing("give all three of --debtor-name, --debtor-iban and --debtor-bic")
    path = debtor_path(state)
    if not path.exists():
        raise DebtorMissing(
            "no account to pay from: record the municipality's account once with"
            " `vtp finance debtor --name NAME --iban IBAN --bic BIC`"
        )
    data = json.loads(path.read_text())
    return checked(data["name"], data["iban"], data["bic"])
