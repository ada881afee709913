"""A local SMTP sink (aiosmtpd): every mail is kept as an .eml file so people and tests can
read what the notifications service sent."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from vtp.devstack.processes import free_port


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
