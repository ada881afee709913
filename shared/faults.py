"""Fault injection for the chaos harness (`vtp chaos`), off unless its variable is set.

`VTP_FAULT_CRASH_AFTER_BATCHES=N` makes the process SIGKILL itself right after the N-th
batch's database commit and before its Kafka offset commit: the narrowest window of the
delivery protocol, which a random kill would rarely hit.
"""

from __future__ import annotations

import os
import signal

from shared.logging import get_logger

log = get_logger(__name__)
_ENV = "VTP_FAULT_CRASH_AFTER_BATCHES"


class CrashAfterCommit:
    def __init__(self) -> None:
        raw = os.environ.get(_ENV, "")
        self._remaining = int(raw) if raw.isdigit() and int(raw) > 0 else None
        if self._remaining is not None:
            log.warning(
                "fault injection armed", fault="crash_after_commit", batches=self._remaining
            )

    def after_database_commit(self) -> None:
        if self._remaining is None:
            return
        self._remaining -= 1
        if self._remaining == 0:
            log.warning("fault injected: SIGKILL between database commit and offset commit")
            os.kill(os.getpid(), signal.SIGKILL)
