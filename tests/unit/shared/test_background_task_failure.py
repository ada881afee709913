"""A service's background task (the outbox relay, the offset commits) that ends with an
error is said at once: the relay once ended silently after a database restart, and the
service published nothing more while it looked well."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from shared.runtime import report_task_failure


async def _fails() -> None:
    raise RuntimeError("connection has been released back to the pool")


async def _ends_well() -> None:
    return None


async def test_a_background_task_that_fails_is_reported_when_it_does() -> None:
    with capture_logs() as logs:
        for work in (_fails, _ends_well):
            task = asyncio.create_task(work(), name=work.__name__)
            task.add_done_callback(report_task_failure)
            await asyncio.wait([task])
            await asyncio.sleep(0)  # done callbacks run in the next turn
    [told] = [line for line in logs if line["event"] == "background task failed"]
    assert (told["task"], told["error"], told["log_level"]) == ("_fails", "RuntimeError", "error")


async def test_a_cancelled_task_is_no_failure() -> None:
    with capture_logs() as logs:
        task = asyncio.create_task(asyncio.sleep(10))
        task.add_done_callback(report_task_failure)
        await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait([task])
        await asyncio.sleep(0)
    assert logs == []
