"""The whole system on one machine: broker, PostgreSQL, SMTP sink and the three services as
separate OS processes. Everything it starts lives under one state folder and is stopped by
pid when the stack stops.

When `KAFKA_BOOTSTRAP_SERVERS` or `DATABASE_URL` (or a service's own `<SERVICE>_DATABASE_URL`)
are set, those are used instead of the embedded broker or database.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from shared.sealing import generate_keypair
from vtp.devstack.broker import EmbeddedBroker
from vtp.devstack.postgres import EmbeddedPostgres
from vtp.devstack.processes import free_port, spawn, stop_process, wait_until
from vtp.devstack.smtp import SmtpSinkProcess

SERVICES = ("cards", "claims", "notifications")


def configured_dsns(environ: Mapping[str, str]) -> dict[str, str]:
    """The databases the environment names: a service's own `<SERVICE>_DATABASE_URL`, else
    the database named after it on `DATABASE_URL`'s server (its options, such as
    `?sslmode=require`, kept). Services it names none for get the embedded PostgreSQL."""
    server = environ.get("DATABASE_URL")
    dsns = {}
    for service in SERVICES:
        own = environ.get(f"{service.upper()}_DATABASE_URL")
        if own:
            dsns[service] = own
        elif server:
            dsns[service] = urlunsplit(urlsplit(server)._replace(path=f"/{service}"))
    return dsns


def how_it_ended(returncode: int) -> str:
    """A process's return code in words: `killed by SIGKILL`, `exited with status 1`."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


def without_password(dsn: str) -> str:
    """A database URL fit to print or to leave in a state file: an external server's
    password (from `DATABASE_URL`) replaced by `***`."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


# CPU priority (nice steps) when the machine has fewer cores than work: the money path
# (claims, the broker, the database) comes first and mail may wait. Measured with
# `vtp bench` on two cores: without it, notifications took a third of the CPU while
# check-ins were being decided and capped them at ~2,300/s.
SERVICE_NICE = {"cards": 5, "claims": 0, "notifications": 10}
STACK_FILE = "stack.json"
KEYS_FILE = "keys.json"
# The key in keys.json of the bearer token the claims and notifications APIs require.
OPERATIONS_TOKEN = "operations_token"  # noqa: S105 - the name, not the token


@dataclass
class ServiceProcess:
    name: str
    module: str
    port: int
    env: dict[str, str]
    log_path: Path
    nice: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = spawn(
            [sys.executable, "-m", self.module], self.log_path, env=self.env, nice=self.nice
        )

    def healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(
                f"service {self.name} exited with {self.proc.returncode}; see {self.log_path}"
            )
        try:
            return httpx.get(f"{self.url}/health/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout_s=20)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class Stack:
    state_dir: Path
    claims_processes: int = 1
    extra_env: dict[str, str] = field(default_factory=dict)
    statement_stats: bool = False  # pg_stat_statements in the embedded PostgreSQL
    broker: EmbeddedBroker | None = None
    postgres: EmbeddedPostgres | None = None
    smtp: SmtpSinkProcess | None = None
    bootstrap_servers: str = ""
    dsns: dict[str, str] = field(default_factory=dict)
    services: list[ServiceProcess] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    def start(self, *, progress: Any = None) -> None:
        """Start everything; if any part fails, stop what was started (no orphans)."""
        try:
            self._start(progress)
        except BaseException:
            self.stop()
            raise

    def _start(self, progress: Any) -> None:
        def step(text: str) -> None:
            if progress is not None:
                progress(text)

        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.keys = load_or_create_keys(self.state_dir)
        external_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if external_kafka:
            self.bootstrap_servers = external_kafka
        else:
            step("starting the embedded Kafka-protocol broker")
            self.broker = EmbeddedBroker(self.log_dir)
            self.broker.start()
            self.bootstrap_servers = self.broker.bootstrap_servers
        self.dsns = configured_dsns(os.environ)
        embedded = [s for s in SERVICES if s not in self.dsns]
        if embedded:
            step("starting embedded PostgreSQL")
            self.postgres = EmbeddedPostgres(
                self.state_dir / "pgdata", self.log_dir, statement_stats=self.statement_stats
            )
            self.postgres.start()
            self.postgres.create_databases(embedded)
            self.dsns |= {s: self.postgres.dsn(s) for s in embedded}
        step("starting the SMTP sink")
        self.smtp = SmtpSinkProcess(self.state_dir / "mail", self.log_dir)
        self.smtp.start()
        step("creating topics")
        _run_async_ensure_topics(self.bootstrap_servers)
        for name in SERVICES:
            count = self.claims_processes if name == "claims" else 1
            for index in range(count):
                self.services.append(self._service(name, index))
        for service in self.services:
            step(f"starting service {service.name}")
            service.start()
        for service in self.services:
            wait_until(
                service.healthy, timeout_s=120, what=f"service {service.name}", interval_s=0.2
            )
        self.write_state()

    def _service(self, name: str, index: int) -> ServiceProcess:
        port = free_port()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            f"{name.upper()}_DATABASE_URL": self.dsns[name],
            f"{name.upper()}_HTTP_PORT": str(port),
            "VTP_STATE_DIR": str(self.state_dir),
            "CARDS_FINANCE_PUBLIC_KEY": self.keys["finance_public"],
            "CARDS_NOTIFICATIONS_PUBLIC_KEY": self.keys["notifications_public"],
            "CARDS_MASTER_KEY": self.keys["cards_master"],
            "CARDS_API_TOKEN_SECRET": self.keys["api_token_secret"],
            "CLAIMS_API_TOKEN_SECRET": self.keys[OPERATIONS_TOKEN],
            "NOTIFICATIONS_API_TOKEN_SECRET": self.keys[OPERATIONS_TOKEN],
            "NOTIFICATIONS_PRIVATE_KEY": self.keys["notifications_private"],
            "NOTIFICATIONS_SMTP_HOST": "127.0.0.1",
            "NOTIFICATIONS_LETTERS_DIR": str(self.state_dir / "letters"),
            "NOTIFICATIONS_SMTP_PORT": str(self.smtp.port if self.smtp else 25),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        suffix = f"-{index}" if index else ""
        return ServiceProcess(
            name=name,
            module=f"services.{name}",
            port=port,
            env=env,
            log_path=self.log_dir / f"{name}{suffix}.log",
            nice=SERVICE_NICE.get(name, 0),
        )

    def add_service(self, name: str) -> ServiceProcess:
        """Start one more process of a service (e.g. a second claims consumer) and wait for it."""
        index = sum(1 for s in self.services if s.name == name)
        service = self._service(name, index)
        self.services.append(service)
        service.start()
        wait_until(service.healthy, timeout_s=120, what=f"service {name}", interval_s=0.2)
        self.write_state()
        return service

    def service_pids(self) -> list[int]:
        return [s.proc.pid for s in self.services if s.proc is not None and s.proc.poll() is None]

    def processes(self) -> dict[str, subprocess.Popen[bytes] | None]:
        """Every process the stack started, by name."""
        started: dict[str, subprocess.Popen[bytes] | None] = {
            name: s.proc for name, s in self.named_services().items()
        }
        for name, part in (
            ("broker", self.broker),
            ("PostgreSQL", self.postgres),
            ("SMTP sink", self.smtp),
        ):
            if part is not None:
                started[name] = part.proc
        return started

    def ended(self) -> dict[str, str]:
        """The processes that have ended, each with how (`vtp up` restarts nothing)."""
        return {
            name: how_it_ended(proc.returncode)
            for name, proc in self.processes().items()
            if proc is not None and proc.poll() is not None
        }

    def named_services(self) -> dict[str, ServiceProcess]:
        """Each process by a unique name: `claims`, `claims-1`, … for extra processes."""
        return {f"{s.name}{'-' + str(i) if i else ''}": s for i, s in _indexed(self.services)}

    def service(self, name: str) -> ServiceProcess:
        return next(s for s in self.services if s.name == name)

    def url(self, name: str) -> str:
        return self.service(name).url

    def operations_headers(self) -> dict[str, str]:
        """What a client of the claims and notifications APIs sends to be let in."""
        return bearer(self.keys[OPERATIONS_TOKEN])

    def write_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "bootstrap_servers": self.bootstrap_servers,
            "dsns": {name: without_password(dsn) for name, dsn in self.dsns.items()},
            "smtp_port": self.smtp.port if self.smtp else None,
            "smtp_pid": self.smtp.pid if self.smtp else None,
            "mailbox": str(self.smtp.mailbox) if self.smtp else None,
            "log_dir": str(self.log_dir),
            "services": {
                name: {"url": s.url, "pid": s.proc.pid if s.proc else None}
                for name, s in self.named_services().items()
            },
            "broker_pid": self.broker.pid if self.broker else None,
            "postgres_pid": self.postgres.pid if self.postgres else None,
        }
        (self.state_dir / STACK_FILE).write_text(json.dumps(state, indent=2))

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        if self.smtp is not None:
            self.smtp.stop()
        if self.postgres is not None:
            self.postgres.stop()
        if self.broker is not None:
            self.broker.stop()
        (self.state_dir / STACK_FILE).unlink(missing_ok=True)


def _indexed(services: list[ServiceProcess]) -> list[tuple[int, ServiceProcess]]:
    seen: dict[str, int] = {}
    out = []
    for s in services:
        index = seen.get(s.name, 0)
        seen[s.name] = index + 1
        out.append((index, s))
    return out


def load_or_create_keys(state_dir: Path) -> dict[str, str]:
    """Development keys, made once per state folder (never used in production). A folder
    made before the operations token existed gets one added; its other keys are kept."""
    path = state_dir / KEYS_FILE
    if path.exists():
        keys: dict[str, str] = json.loads(path.read_text())
        if OPERATIONS_TOKEN in keys:
            return keys
        keys[OPERATIONS_TOKEN] = os.urandom(32).hex()
    else:
        finance_private, finance_public = generate_keypair()
        notif_private, notif_public = generate_keypair()
        keys = {
            "finance_private": finance_private,
            "finance_public": finance_public,
            "notifications_private": notif_private,
            "notifications_public": notif_public,
            "cards_master": os.urandom(32).hex(),
            "api_token_secret": os.urandom(32).hex(),
            OPERATIONS_TOKEN: os.urandom(32).hex(),
        }
    path.write_text(json.dumps(keys, indent=2))
    path.chmod(0o600)
    return keys


def read_keys(state_dir: Path) -> dict[str, str]:
    """The keys of the stack whose state folder this is, for clients; a clear error if none."""
    path = state_dir / KEYS_FILE
    try:
        keys: dict[str, str] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RuntimeError(f"no stack keys in {path}: start a stack with `vtp up`") from exc
    return keys


def operations_token(state_dir: Path) -> str:
    """The claims and notifications APIs' bearer token of the stack in `state_dir`."""
    token = read_keys(state_dir).get(OPERATIONS_TOKEN)
    if not token:
        raise RuntimeError(
            f"no {OPERATIONS_TOKEN} in {state_dir / KEYS_FILE}: restart the stack to add one"
        )
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def read_running_stack(state_dir: Path) -> dict[str, Any] | None:
    """The state of a stack started by `vtp up`, if its process is still alive."""
    path = state_dir / STACK_FILE
    if not path.exists():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    try:
        os.kill(int(state["pid"]), 0)
    except (ProcessLookupError, PermissionError, ValueError):
        return None
    return state


def _run_async_ensure_topics(bootstrap: str) -> None:
    import asyncio

    from shared.kafka import ensure_topics

    asyncio.run(ensure_topics(bootstrap))
