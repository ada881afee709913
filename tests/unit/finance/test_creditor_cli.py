"""`vtp finance creditor`: a bad IBAN is refused with the reason, and nothing is recorded."""

from __future__ import annotations

import uuid
from pathlib import Path

from typer.testing import CliRunner

from vtp.finance.cli import finance_app

GOOD = "BE71096123456769"


def _creditor(state: Path, iban: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        finance_app,
        [
            *("creditor", str(uuid.uuid4()), "--name", "Aanbieder vzw"),
            *("--iban", iban, "--state-dir", str(state)),
        ],
    )
    return result.exit_code, result.output


def test_a_bad_iban_is_refused_with_its_reason_and_not_echoed(tmp_path: Path) -> None:
    for iban, reason in [
        ("BE71096123456768", "invalid checksum digits"),
        ("BE7109612345676", "invalid length"),
        ("XX00ABC", "invalid country code"),
    ]:
        code, output = _creditor(tmp_path, iban)
        assert code == 2, output
        assert "not a valid IBAN" in output and reason in output
        assert iban not in output
    assert not (tmp_path / "finance" / "creditors.json").exists()


def test_a_good_iban_is_recorded(tmp_path: Path) -> None:
    code, output = _creditor(tmp_path, GOOD)
    assert code == 0, output
    assert GOOD in (tmp_path / "finance" / "creditors.json").read_text()
