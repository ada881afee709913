"""A local SMTP sink (aiosmtpd): every mail is appended to one mbox file, `sent.mbox` in the
sink's folder, so people (any mail client, or a text editor) and tests can read what the
notifications service sent. One file, not a file per mail: creating a file cost 0.03 to
0.9 ms of system time here, depending on the file system's state, up to three times the
CPU of the rest of taking a mail — CPU taken from the services under test.

`SmtpSink` runs in a thread of the calling process (enough for a test); the dev stack runs
`SmtpSinkProcess`, the same server as a child process of its own: under load, taking mail
costs about as much CPU as sending it, and in the process that starts the stack (the
benchmark, the fault harness) it would compete with that process's own clock readings.
Run alone: `python -m vtp.devstack.smtp FOLDER PORT`."""

from __future__ import annotations

import os
import re
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

MAILBOX = "sent.mbox"


def mbox_entry(content: bytes, sender: str | None, at: float) -> bytes:
    """One message in mbox form (mboxrd): a `From ` separator line, the message with LF line
    endings and `>`-quoted `From ` lines, and a blank line."""
    body = content.replace(b"\r\n", b"\n")
    body = re.sub(rb"(?m)^(>*From )", rb">\1", body)
    if not body.endswith(b"\n"):
        body += b"\n"
    separator = f"From {sender or 'MAILER-DAEMON'} {time.asctime(time.gmtime(at))}\n"
    return separator.encode() + body + b"\n"


def read_mbox(path: Path) -> list[bytes]:
    """The messages of an mbox file, each as it was received (apart from LF line endings)."""
    if not path.exists():
        return []
    messages = []
    for chunk in re.split(rb"(?m)^From [^\n]*\n", path.read_bytes())[1:]:
        body = chunk[:-1] if chunk.endswith(b"\n\n") else chunk
        messages.append(re.sub(rb"(?m)^>(>*From )", rb"\1", body))
    return messages


class _AppendToMailbox:
    def __init__(self, path: Path) -> None:
        self.path = path

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        entry = mbox_entry(
            envelope.original_content or envelope.content, envelope.mail_from, time.time()
        )
        # One write, appending: the file grows a whole message at a time (the sink's one
        # event loop takes one DATA at a time).
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, entry)
        finally:
            os.close(fd)
        return "250 Message accepted for delivery"


class _Mailbox:
    folder: Path

    @property
    def mailbox(self) -> Path:
        return self.folder / MAILBOX

    def messages(self) -> list[bytes]:
        """Every mail received so far, oldest first."""
        return read_mbox(self.mailbox)


class SmtpSink(_Mailbox):
    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self._controller: Controller | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._controller = Controller(
            _AppendToMailbox(self.mailbox),
            hostname="127.0.0.1",
            port=self.port,
            ready_timeout=10,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None


class SmtpSinkProcess(_Mailbox):
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


def _serve(folder: Path, port: int) -> None:
    sink = SmtpSink(folder, port)
    sink.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"SMTP sink on 127.0.0.1:{port}, mail in {sink.mailbox}", flush=True)
    stop.wait()
    sink.stop()


if __name__ == "__main__":
    _serve(Path(sys.argv[1]), int(sys.argv[2]))
