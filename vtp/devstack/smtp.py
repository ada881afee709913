"""A local SMTP sink (aiosmtpd): every mail is kept as an .eml file so people and tests can
read what the notifications service sent.

`SmtpSink` runs in a thread of the calling process (enough for a test); the dev stack runs
`SmtpSinkProcess`, the same server as a child process of its own: under load, taking mail
costs about as much CPU as sending it, and in the process that starts the stack (the
benchmark, the fault harness) it would compete with that process's own clock readings.
Run alone: `python -m vtp.devstack.smtp FOLDER PORT`."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from vtp.devstack.processes import (
    free_port,
    port_open,
    spawn,
    stop_process,
    wait_until,
)


class _SaveToFolder:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._seq = itertools.count(1)
        self._lock = threading.Lock()

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        with self._lock:
            n = next(self._seq)
        name = f"{time.time_ns()}-{n:06d}.eml"
        (self.folder / name).write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


class SmtpSink:
    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self._controller: Controller | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._controller = Controller(
            _SaveToFolder(self.folder), hostname="127.0.0.1", port=self.port, ready_timeout=10
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def messages(self) -> list[Path]:
        return sorted(self.folder.glob("*.eml"))


class SmtpSinkProcess:
    """The sink as a child process, with the same interface as `SmtpSink`."""

    def __init__(self, folder: Path, log_dir: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.log_path = log_dir / "smtp.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.proc = spawn(
            [sys.executable, "-m", "vtp.devstack.smtp", str(self.folder), str(self.port)],
            self.log_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            # It stands in for the mail provider, which is not on this machine in
            # production: it must not take CPU from the services under test.
            nice=19,
        )
        wait_until(lambda: port_open("127.0.0.1", self.port), timeout_s=30, what="the SMTP sink")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def messages(self) -> list[Path]:
        return sorted(self.folder.glob("*.eml"))


def _serve(folder: Path, port: int) -> None:
    sink = SmtpSink(folder, port)
    sink.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"SMTP sink on 127.0.0.1:{port}, mail in {folder}", flush=True)
    stop.wait()
    sink.stop()


if __name__ == "__main__":
    _serve(Path(sys.argv[1]), int(sys.argv[2]))
