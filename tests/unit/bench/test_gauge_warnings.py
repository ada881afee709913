"""What the machine gauge says about a run: the figures of a slow or changing machine are
flagged where they are printed, not left to whoever reads them to notice."""

from __future__ import annotations

from vtp.bench.raw import gauge_warnings


def test_a_steady_normal_machine_gives_no_warning() -> None:
    assert gauge_warnings(18.4, 22.9) == []


def test_a_slow_machine_is_named() -> None:
    [warning] = gauge_warnings(50.6, 64.3)
    assert warning.startswith("machine_gauge_ms reached 64.3")
    assert "these figures measure it, not the code" in warning


def test_a_machine_whose_speed_changed_during_the_run_is_named() -> None:
    [warning] = gauge_warnings(18.6, 24.5)
    assert warning.endswith("its phases do not compare with each other")
    assert len(gauge_warnings(21.2, 40.4)) == 2  # slow at times, and changing
