"""The benchmark is a command, not a timed test: CI only checks that its smoke mode works
and reports every figure the issue asks for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_bench_smoke_reports_every_figure(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vtp.cli", "bench", "--smoke", "--json", "--statements"],
        env={**os.environ, "VTP_STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for key in (
        "raw_broker_msgs_per_s",
        "raw_db_rows_per_s",
        "e2e_checkins_per_s",
        "ratio_e2e_to_raw_broker",
        "p50_ms",
        "p99_ms",
        "rss_mb_max",
    ):
        assert figures[key] > 0, key
    assert figures["e2e_checkins_per_s"] / figures["raw_broker_msgs_per_s"] == pytest.approx(
        figures["ratio_e2e_to_raw_broker"], abs=0.001
    )
    assert set(figures["scaling"]) == {"1", "2"}
    assert figures["p50_ms"] <= figures["p99_ms"]
    # The latency's two parts, each no longer than the whole way.
    for part in ("emission_to_decision", "decision_to_outcome"):
        p50, p99 = (
            figures["latency_parts_ms"][part]["p50"],
            figures["latency_parts_ms"][part]["p99"],
        )
        assert 0 <= p50 <= p99 <= figures["p99_ms"] + 0.1, part
    # Where the CPU went, per process, in both windows; and how fast the machine was.
    for window in ("cpu_ms_per_checkin_until_decided", "cpu_ms_per_checkin"):
        assert {"claims", "notifications", "cards", "postgres", "broker"} <= set(figures[window])
        assert figures[window]["claims"] > 0
    until_decided = sum(figures["cpu_ms_per_checkin_until_decided"].values())
    assert until_decided <= sum(figures["cpu_ms_per_checkin"].values())
    # The rate that CPU per check-in would allow on this machine's cores (±1: the sum of
    # the rounded figures depends on the order they are added in).
    ceiling = (os.cpu_count() or 1) * 1000 / until_decided
    assert figures["cpu_bound_checkins_per_s"] == pytest.approx(ceiling, abs=1)
    assert 0 < figures["machine_gauge_ms"]["min"] <= figures["machine_gauge_ms"]["max"]
    # The priorities the figures were measured at: the money path first, mail last.
    nice = figures["nice_by_process"]
    assert nice["notifications"] > nice["cards"] > nice["claims"]
    assert nice["claims"] == nice["postgres"] == nice["broker"]
    # --statements: what PostgreSQL spent the throughput phase on, most expensive first;
    # claims' write of the decided check-ins is among them.
    costs = figures["statements_until_decided"]
    assert costs
    assert [c["us_per_checkin"] for c in costs] == sorted(
        (c["us_per_checkin"] for c in costs), reverse=True
    )
    assert any(
        c["database"] == "claims" and "INSERT INTO claims" in c["query"] and c["calls"] >= 1
        for c in costs
    )
