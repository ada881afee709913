"""The signature checks of a batch of check-ins, on worker threads.

Verifying an Ed25519 signature is ~40 µs of C in libsodium, which releases the GIL while
it runs: the largest single cost of judging a check-in, and the one part of it that can
run on another core while the event loop waits for PostgreSQL. So a batch's checks start
as soon as it is decoded, with the key each device had when last seen, and run beside the
batch's inbox claim and fact reads. A result counts only if the facts, read under the
batch's transaction, give the device that same key; any other check-in is checked again,
with the current key.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass

from shared.checkin_signature import canonical_checkin, verify
from shared.events.checkins import CheckInRecorded

# Below this many check-ins the hop to a thread costs more than it saves (a check-in at a
# time is the quiet-hours case, where latency matters and throughput does not).
MIN_OFFLOADED = 32

_Check = tuple[CheckInRecorded, str]  # a check-in and the public key to check it with


def _verify_all(checks: Sequence[_Check]) -> list[bool]:
    return [verify(key, canonical_checkin(c), c.signature) for c, key in checks]


@dataclass(frozen=True)
class _Started:
    checkin: CheckInRecorded  # held, so that its id() is not reused while this is pending
    public_key: str
    result: asyncio.Future[list[bool]]
    position: int


class SignatureChecks:
    """Remembers each device's last known public key, to start a batch's checks before
    its facts arrive. A device's key changes only by registering it again."""

    def __init__(self, threads: int = 2, executor: Executor | None = None) -> None:
        self._threads = threads
        self._executor = executor or ThreadPoolExecutor(threads, "signatures")
        self._keys: dict[uuid.UUID, str] = {}
        self._started: dict[int, _Started] = {}  # by id() of the check-in

    def start(self, checkins: Sequence[CheckInRecorded]) -> None:
        """Start checking the check-ins whose device's key is known, unless started already."""
        checks = [
            (c, key)
            for c in checkins
            if id(c) not in self._started and (key := self._keys.get(c.device_id)) is not None
        ]
        for part, result in self._submit(checks):
            for position, (c, key) in enumerate(part):
                self._started[id(c)] = _Started(c, key, result, position)

    async def results(
        self, checkins: Sequence[CheckInRecorded], current_keys: Mapping[uuid.UUID, str]
    ) -> list[bool]:
        """Whether each check-in's signature is valid under its device's current key
        (False for a device without one). Collects every check started so far: what a
        batch started and never asked for (all of it duplicates, say) is dropped here."""
        self._keys.update(current_keys)
        started, self._started = self._started, {}
        await asyncio.gather(*{id(s.result): s.result for s in started.values()}.values())
        valid: list[bool | None] = [None] * len(checkins)
        again: list[tuple[int, _Check]] = []
        for i, c in enumerate(checkins):
            key = current_keys.get(c.device_id)
            early = started.get(id(c))
            if key is None:
                valid[i] = False
            elif early is not None and early.public_key == key:
                valid[i] = early.result.result()[early.position]
            else:
                again.append((i, (c, key)))
        parts = self._submit([check for _, check in again])
        checked = [ok for part in await asyncio.gather(*(r for _, r in parts)) for ok in part]
        for (i, _), ok in zip(again, checked, strict=True):
            valid[i] = ok
        return [ok is True for ok in valid]

    def _submit(
        self, checks: list[_Check]
    ) -> list[tuple[list[_Check], asyncio.Future[list[bool]]]]:
        if not checks:
            return []
        loop = asyncio.get_running_loop()
        if len(checks) < MIN_OFFLOADED:
            done: asyncio.Future[list[bool]] = loop.create_future()
            done.set_result(_verify_all(checks))
            return [(checks, done)]
        size = -(-len(checks) // self._threads)
        parts = [checks[at : at + size] for at in range(0, len(checks), size)]
        return [(part, loop.run_in_executor(self._executor, _verify_all, part)) for part in parts]
