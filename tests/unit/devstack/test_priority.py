"""Background work of the dev stack yields the CPU to the money path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from vtp.devstack.processes import spawn
from vtp.devstack.stack import SERVICE_NICE

_REPORT = (
    "import os, pathlib; p = pathlib.Path('/proc/self/autogroup'); "
    "print(os.nice(0), p.read_text().split()[-1] if p.exists() else 'none')"
)


def _niceness_of_child(tmp_path: Path, nice: int) -> tuple[int, str]:
    log = tmp_path / f"child-{nice}.log"
    proc = spawn([sys.executable, "-c", _REPORT], log, nice=nice)
    assert proc.wait(30) == 0
    process_nice, group_nice = log.read_text().split()
    return int(process_nice), group_nice


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="nice and autogroup: Linux")
def test_a_child_runs_at_the_priority_it_was_given(tmp_path: Path) -> None:
    base = os.nice(0)
    process_nice, group_nice = _niceness_of_child(tmp_path, 7)
    assert process_nice == min(base + 7, 19)
    # Its own session's scheduling group is lowered too (where the kernel has autogroups):
    # without that, nice ranks it only against processes of its own session.
    assert group_nice in ("7", "none")
    assert _niceness_of_child(tmp_path, 0)[0] == base


def test_the_money_path_has_the_highest_priority() -> None:
    assert SERVICE_NICE["claims"] == 0
    assert SERVICE_NICE["notifications"] > SERVICE_NICE["cards"] >= SERVICE_NICE["claims"]
