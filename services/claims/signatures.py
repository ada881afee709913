"""The signature checks of a batch of check-ins, done while the batch waits for PostgreSQL.

Verifying an Ed25519 signature is ~40 µs of libsodium: the largest single cost of judging
a check-in. While the batch's transaction waits for its inbox claim and fact reads, the
event loop thread has nothing to do, so a batch's checks start as soon as it is decoded,
in a task that verifies a few at a time and yields in between (database replies are
handled as they arrive), with the key each device had when last seen. A result counts
only if the facts, read under the batch's transaction, give the device that same key; any
other check-in is checked again, with the current key.

Worker threads were tried first (libsodium releases the GIL): on a machine whose cores
are all busy they added CPU for the hand-overs and gave nothing back (A/B runs of the
benchmark's throughput phase).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from shared.checkin_signature import canonical_checkin, verify
from shared.events.checkins import CheckInRecorded

# Checks between two yields to the event loop: ~1 ms, the longest a database reply waits.
CHECKS_PER_TURN = 24

_Check = tuple[CheckInRecorded, str]  # a check-in and the public key to check it with


async def _verify_in_turns(checks: Sequence[_Check]) -> list[bool]:
    valid: list[bool] = []
    for at in range(0, len(checks), CHECKS_PER_TURN):
        if at:
            await asyncio.sleep(0)
        valid += [
            verify(key, canonical_checkin(c), c.signature)
            for c, key in checks[at : at + CHECKS_PER_TURN]
        ]
    return valid


@dataclass(frozen=True)
class _Started:
    checkin: CheckInRecorded  # held, so that its id() is not reused while this is pending
    public_key: str
    result: asyncio.Task[list[bool]]
    position: int


class SignatureChecks:
    """Remembers each device's last known public key, to start a batch's checks before
    its facts arrive. A device's key changes only by registering it again."""

    # Batches whose checks may be under way at once: the one in its transaction and the
    # one read ahead (shared/readahead.py). Older ones were never asked for (all of them
    # duplicates, say) and are dropped.
    KEPT_BATCHES = 2

    def __init__(self) -> None:
        self._keys: dict[uuid.UUID, str] = {}
        self._started: dict[int, _Started] = {}  # by id() of the check-in
        self._batches: deque[tuple[asyncio.Task[list[bool]], list[int]]] = deque()

    def start(self, checkins: Sequence[CheckInRecorded]) -> None:
        """Start checking the check-ins whose device's key is known, unless started already."""
        checks = [
            (c, key)
            for c in checkins
            if id(c) not in self._started and (key := self._keys.get(c.device_id)) is not None
        ]
        if not checks:
            return
        result = asyncio.create_task(_verify_in_turns(checks), name="signature-checks")
        for position, (c, key) in enumerate(checks):
            self._started[id(c)] = _Started(c, key, result, position)
        self._batches.append((result, [id(c) for c, _ in checks]))
        while len(self._batches) > self.KEPT_BATCHES:
            self._forget(*self._batches.popleft())

    def _forget(self, task: asyncio.Task[list[bool]], ids: list[int]) -> None:
        task.cancel()
        for i in ids:
            if (s := self._started.get(i)) is not None and s.result is task:
                del self._started[i]

    async def results(
        self, checkins: Sequence[CheckInRecorded], current_keys: Mapping[uuid.UUID, str]
    ) -> list[bool]:
        """Whether each check-in's signature is valid under its device's current key
        (False for a device without one)."""
        self._keys.update(current_keys)
        started = {id(c): s for c in checkins if (s := self._started.pop(id(c), None))}
        tasks = {s.result for s in started.values()}
        await asyncio.gather(*tasks)
        # Collected batches stop counting against KEPT_BATCHES at once (with any check-ins
        # of theirs not asked for: duplicates). Left in, a batch this very call had to
        # start (a device whose key was not known yet) pushed out the batch read ahead,
        # whose checks were then done again by the next call, and so on, batch after
        # batch: 12 of 40 batches were checked twice in the benchmark's harness.
        for task, ids in [b for b in self._batches if b[0] in tasks]:
            self._batches.remove((task, ids))
            self._forget(task, ids)
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
        checked = await _verify_in_turns([check for _, check in again])
        for (i, _), ok in zip(again, checked, strict=True):
            valid[i] = ok
        return [ok is True for ok in valid]
