"""One device, one user at a time for a key rotation: an advisory lock on `<device_id>.lock`.

The reference client's commands (scan, flush, heartbeat) hold it shared while they run; a
key rotation holds it exclusively, from before it asks the cards API for a new key until
the new key is installed. So a rotation does not start while a client of the device runs,
and a client that starts during a rotation waits for it and then reads the new key. (An
`flock`: released by the kernel when the process ends, however it ends.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path


class DeviceBusy(RuntimeError):
    """Another process holds the device's lock."""


@contextlib.contextmanager
def device_lock(path: Path, *, exclusive: bool, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the lock in `path` (created 0600 if missing); DeviceBusy when it cannot be had
    within `wait_s` seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DeviceBusy(f"{path.name} is held by another process") from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)
