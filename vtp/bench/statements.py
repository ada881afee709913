"""Which SQL statements PostgreSQL spent its time on during a phase of the benchmark
(`vtp bench --statements`): pg_stat_statements, reset before the phase, read after it.

How both database findings of the fifth session were made (a generic plan kept after a
quiet spell, a join that hashed every holder's history): by reading this table for the
benchmark's own sequence of phases, not a throughput run on its own."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg

_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class StatementCost:
    database: str
    calls: int
    us_per_checkin: float  # execution time (not CPU alone: waits on locks and I/O count)
    wal_bytes_per_checkin: float
    query: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def one_line(query: str, width: int = 110) -> str:
    """A statement's text on one line, shortened to `width` characters (… when cut)."""
    flat = _WHITESPACE.sub(" ", query).strip()
    return flat if len(flat) <= width else flat[: width - 1] + "…"


async def reset(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
    finally:
        await conn.close()


async def top(dsn: str, checkins: int, limit: int = 12) -> list[StatementCost]:
    """The most expensive statements since `reset`, per check-in of the phase."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            """
            SELECT d.datname, s.calls, s.total_exec_time, s.wal_bytes, s.query
            FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
            ORDER BY s.total_exec_time DESC LIMIT $1
            """,
            limit,
        )
    finally:
        await conn.close()
    per = max(checkins, 1)
    return [
        StatementCost(
            database=r["datname"],
            calls=int(r["calls"]),
            us_per_checkin=round(float(r["total_exec_time"]) * 1000 / per, 1),
            wal_bytes_per_checkin=round(float(r["wal_bytes"]) / per),
            query=one_line(r["query"]),
        )
        for r in rows
    ]
