"""Real Kafka and PostgreSQL for tests: testcontainers when a Docker engine answers, the
embedded broker and database otherwise (these machines and CI have no Docker engine)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from vtp.devstack.broker import EmbeddedBroker
from vtp.devstack.postgres import EmbeddedPostgres


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return (
            subprocess.run(
                ["docker", "info"], capture_output=True, timeout=5, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


@dataclass
class Infra:
    bootstrap_servers: str
    postgres_dsn_base: str  # without the database name
    broker: EmbeddedBroker | None = None
    postgres: EmbeddedPostgres | None = None

    def dsn(self, database: str) -> str:
        return f"{self.postgres_dsn_base}/{database}"

    async def new_database(self) -> str:
        """A fresh, empty database; its DSN."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        admin = await asyncpg.connect(self.dsn("postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        return self.dsn(name)


@contextlib.contextmanager
def real_infra(state_dir: Path) -> Iterator[Infra]:
    if docker_available():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.postgres import PostgresContainer

        with KafkaContainer().with_kraft() as kafka, PostgresContainer("postgres:18") as pg:
            base = pg.get_connection_url(driver=None).rsplit("/", 1)[0]
            yield Infra(kafka.get_bootstrap_server(), base)
        return
    broker = EmbeddedBroker(state_dir / "logs")
    postgres = EmbeddedPostgres(state_dir / "pgdata", state_dir / "logs")
    broker.start()
    try:
        postgres.start()
        try:
            yield Infra(broker.bootstrap_servers, postgres.dsn("").rstrip("/"), broker, postgres)
        finally:
            postgres.stop()
    finally:
        broker.stop()
