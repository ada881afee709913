"""A stand-in for a device's broker transport in unit tests: takes records in order while
`up`, takes none while not (as a broker that does not answer)."""

from __future__ import annotations

from collections.abc import Sequence

from shared.outbox import OutgoingRecord


class FakeBroker:
    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.topic: list[OutgoingRecord] = []

    async def send_in_order(self, records: Sequence[OutgoingRecord]) -> int:
        if not self.up:
            return 0
        self.topic.extend(records)
        return len(records)

    async def close(self) -> None:
        return None
