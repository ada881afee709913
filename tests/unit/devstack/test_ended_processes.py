"""`vtp up` restarts nothing; it says which of its processes ended, and how."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from vtp.devstack.stack import ServiceProcess, Stack, how_it_ended


def test_how_a_process_ended_in_words() -> None:
    assert how_it_ended(-signal.SIGKILL) == "killed by SIGKILL"
    assert how_it_ended(-signal.SIGTERM) == "killed by SIGTERM"
    assert how_it_ended(1) == "exited with status 1"
    assert how_it_ended(0) == "exited with status 0"


def test_the_stack_names_the_service_that_was_killed_and_only_that_one(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    for name in ("cards", "claims"):
        service = ServiceProcess(name, "x", 0, {}, tmp_path / f"{name}.log")
        service.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        stack.services.append(service)
    try:
        assert stack.ended() == {}
        claims = stack.services[1].proc
        assert claims is not None
        claims.send_signal(signal.SIGKILL)
        claims.wait(10)
        assert stack.ended() == {"claims": "killed by SIGKILL"}
    finally:
        for service in stack.services:
            if service.proc is not None and service.proc.poll() is None:
                service.proc.kill()
                service.proc.wait(10)
