"""Unit tests of the device never reach a cards API over the network: the clock measurement
of the device commands (`vtp device scan`, `heartbeat`, `simulate`) finds no cards API
unless a test puts one there (an httpx MockTransport, tests/unit/device/test_cli_clock.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest

from vtp.device import session, simulate


async def _no_cards_api(
    url: str, clock: Callable[[], datetime] | None = None, timeout_s: float = 3.0
) -> int | None:
    return None


@pytest.fixture(autouse=True)
def no_cards_api_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "measure_clock_offset", _no_cards_api)
    monkeypatch.setattr(simulate, "measure_clock_offset", _no_cards_api)
