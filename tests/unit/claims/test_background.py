"""Claims' periodic jobs: a run at start or after one interval, a failure that does not end
the loop, and stop honoured while waiting."""

from __future__ import annotations

import asyncio

from services.claims.background import every, hourly_in_transaction


async def test_a_job_at_start_runs_at_once_and_again_after_a_failure() -> None:
    stop = asyncio.Event()
    runs: list[float] = []
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def job() -> None:
        runs.append(loop.time() - started)
        if len(runs) == 1:
            raise ConnectionRefusedError("down")
        stop.set()

    await asyncio.wait_for(every(0.2, job, stop, failed="x failed", at_start=True), 5)
    assert len(runs) == 2
    assert runs[0] < 0.1 <= runs[1]  # at once, then after one interval despite the failure


async def test_without_at_start_the_first_run_waits_and_stop_ends_the_wait() -> None:
    stop = asyncio.Event()
    runs = 0

    async def job() -> None:
        nonlocal runs
        runs += 1

    task = asyncio.create_task(every(60, job, stop, failed="x failed"))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert runs == 0


async def test_an_hourly_job_runs_at_start_in_one_transaction_of_its_own() -> None:
    events: list[str] = []

    class _Transaction:
        async def __aenter__(self) -> None:
            events.append("begin")

        async def __aexit__(self, *failure: object) -> None:
            events.append("rollback" if failure[0] else "commit")

    class _Conn:
        def transaction(self) -> _Transaction:
            return _Transaction()

    class _Acquired:
        async def __aenter__(self) -> _Conn:
            return _Conn()

        async def __aexit__(self, *_: object) -> None:
            events.append("released")

    class _Pool:
        def acquire(self) -> _Acquired:
            return _Acquired()

    stop = asyncio.Event()

    async def expire(conn: object) -> int:
        assert isinstance(conn, _Conn)
        events.append("job")
        stop.set()
        return 0

    await asyncio.wait_for(
        hourly_in_transaction(_Pool(), expire, stop, failed="x failed"),  # type: ignore[arg-type]
        5,
    )
    assert events == ["begin", "job", "commit", "released"]
