from __future__ import annotations

import asyncio
import sys

import pytest

from shared import eventloop


async def _answer() -> tuple[str, int]:
    await asyncio.sleep(0)
    return eventloop.loop_name(), 42


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop does not exist on Windows")
def test_a_service_coroutine_runs_to_its_result_on_uvloop() -> None:
    assert eventloop.run(_answer()) == ("uvloop", 42)


def test_the_standard_loop_is_named_as_such() -> None:
    assert asyncio.run(_answer()) == ("asyncio", 42)
