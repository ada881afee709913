"""`vtp demo --json` on its own stack: every distinct check-in decided once (or waiting for
a card claims does not know), one claim per approval (duplicates included in the traffic), and a ledger that balances."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_demo_json_line_shows_a_consistent_run(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vtp.cli", "demo", "--checkins", "500", "--holders", "60", "--json"],
        env={**os.environ, "VTP_STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["emitted"] == 500
    assert summary["duplicates_sent"] > 0 and summary["malformed_sent"] > 0
    # Those with a card claims does not know (the demo's unknown card) wait for it.
    assert summary["decided"] + summary["waiting_for_card"] == summary["distinct"] > 0
    assert summary["approved"] + summary["rejected"] == summary["decided"]
    assert summary["claims"] == summary["approved"] == summary["claim_transfers"]
    assert summary["ledger_debit_cents"] == summary["ledger_credit_cents"] > 0
    assert summary["payment_total_cents"] == summary["approved_cents"]
    assert not list(tmp_path.glob("**/stack.json")), "the demo's own stack must be stopped"
