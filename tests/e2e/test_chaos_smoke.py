"""A short chaos run in CI: a few thousand check-ins under a handful of faults must end
with nothing lost, nothing doubled and the ledger equal to the reference model's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_short_chaos_run_matches_the_reference_model(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vtp.cli",
            "chaos",
            "--seed",
            "3",
            "--checkins",
            "2000",
            "--faults",
            "8",
            "--json",
        ],
        env={**os.environ, "VTP_STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    assert lines, result.stderr[-3000:]
    report = json.loads(lines[-1])
    assert "error" not in report, result.stderr[-3000:]
    assert report["faults_injected"] == 8
    assert report["lost"] == 0
    assert report["duplicated"] == 0
    assert report["mismatched_outcomes"] == 0
    assert report["ledger_difference_cents"] == 0
    assert report["ok"] is True, result.stderr[-3000:]
    assert result.returncode == 0
