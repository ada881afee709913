"""`vtp status` when nothing answers: each absence named as a problem, exit 1."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import typer
from typer.testing import CliRunner

from vtp.operations.status_cli import how_it_ended, is_stopped, status_command

status_app = typer.Typer()
status_app.command()(status_command)


def _closed_port() -> int:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_a_service_and_a_broker_that_do_not_answer_are_both_named() -> None:
    cards, broker = _closed_port(), f"127.0.0.1:{_closed_port()}"
    result = CliRunner().invoke(
        status_app,
        ["--json", "--service", f"cards=http://127.0.0.1:{cards}", "--bootstrap-servers", broker],
    )
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["problems"] == [
        f"the broker at {broker} did not answer (KafkaConnectionError): is it running and"
        " reachable? Until it is back the services keep their events in their outboxes, and"
        " consumer lag and dead letters cannot be read",
        f"cards is not ready (no answer: ConnectError, nothing listens at"
        f" http://127.0.0.1:{cards}: is its process running? its log says why it stopped)",
    ]
    assert report["consumer_groups"] == []


def test_consumer_groups_the_broker_could_not_tell_are_unknown_not_an_empty_table() -> None:
    cards, broker = f"http://127.0.0.1:{_closed_port()}", f"127.0.0.1:{_closed_port()}"
    result = CliRunner().invoke(
        status_app,
        ["--service", f"cards={cards}", "--bootstrap-servers", broker],
        env={"COLUMNS": "400"},
    )
    assert result.exit_code == 1
    assert "consumer groups: not known, the broker did not answer" in result.stderr
    assert "Consumer groups" not in result.stderr


@pytest.mark.parametrize(
    ("code", "ended", "why"),
    [
        ("import os; os.kill(os.getpid(), 9)", "was killed by SIGKILL", "something outside"),
        ("raise SystemExit(3)", "exited with status 3", "the last lines of"),
    ],
)
def test_a_stack_service_whose_process_is_gone_is_named_with_how_it_ended(
    tmp_path: Path, code: str, ended: str, why: str
) -> None:
    dead = subprocess.Popen([sys.executable, "-c", code])
    while how_it_ended(dead.pid) is None:  # a zombie: dead, its end not yet collected
        time.sleep(0.01)
    assert how_it_ended(os.getpid()) is None
    port = _closed_port()
    stack = {
        "pid": os.getpid(),  # `vtp up` itself runs
        "bootstrap_servers": f"127.0.0.1:{_closed_port()}",
        "log_dir": str(tmp_path / "logs"),
        "services": {"claims": {"url": f"http://127.0.0.1:{port}", "pid": dead.pid}},
    }
    (tmp_path / "stack.json").write_text(json.dumps(stack))
    try:
        result = CliRunner().invoke(status_app, ["--json", "--state-dir", str(tmp_path)])
    finally:
        dead.wait()
    assert how_it_ended(dead.pid) == "has exited"  # collected: no trace of how
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["problems"][1].startswith(
        f"claims is not ready (its process (pid {dead.pid}) {ended}, and `vtp up` does not"
        f" restart it: {why}"
    )
    assert report["mail_checked"] is True  # no notifications in this stack


class _Notifications(BaseHTTPRequestHandler):
    """A notifications service whose mail relay is away: ready, mail pending and failing."""

    token = "t" * 32
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.asked.append(self.path)
        path = self.path.partition("?")[0]
        authorised = self.headers.get("Authorization") == f"Bearer {self.token}"
        if path == "/health/ready":
            self._json(200, {"status": "ready", "outbox_pending": 0, "outbox_parked": 0})
        elif not authorised:
            self._json(401, {"detail": "authorization: unknown token"})
        elif path == "/stats/queue":
            self._json(200, {"pending": 2, "due": 0, "latest_created_at": None})
        elif path == "/deliveries":
            error = "SMTP server unreachable: Error connecting to 127.0.0.1 on port 1"
            self._json(200, [{"attempts": 6, "last_error": error, "channel": "email"}] * 2)
        else:
            self._json(404, {})

    def _json(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def notifications() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Notifications)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_mail_that_does_not_go_out_is_a_problem_though_the_service_is_ready(
    notifications: str,
) -> None:
    args = ["--json", "--service", f"notifications={notifications}"]
    args += ["--bootstrap-servers", f"127.0.0.1:{_closed_port()}"]
    result = CliRunner().invoke(status_app, [*args, "--token", _Notifications.token])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["problems"][1].startswith(
        "notifications cannot deliver e-mail: 2 pending message(s) failed 4 times or more"
    )
    assert report["mail_checked"] is True
    # Without the token it cannot look, and says so rather than staying silent.
    result = CliRunner().invoke(status_app, args, env={"VTP_OPERATIONS_TOKEN": None})
    report = json.loads(result.stdout)
    assert not any("e-mail" in p for p in report["problems"])
    assert report["mail_not_checked_because"] == (
        "no operations token (--token or $VTP_OPERATIONS_TOKEN)"
    )
    result = CliRunner().invoke(status_app, [*args, "--token", "x" * 32])
    assert json.loads(result.stdout)["mail_not_checked_because"] == (
        "notifications answered HTTP 401 to the token"
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--service", "cards"], ["--service", "'cards': expected name=http(s)://host:port"]),
        (
            ["--dead-letters-since", "soon", "--service", "cards=http://127.0.0.1:1"],
            ["--dead-letters-since", "expected a time ago"],
        ),
    ],
)
def test_an_option_it_cannot_read_is_refused_naming_it(args: list[str], said: list[str]) -> None:
    result = CliRunner().invoke(
        status_app, [*args, "--bootstrap-servers", "127.0.0.1:1"], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 2
    assert all(part in result.stderr for part in said), result.stderr


def test_a_stack_process_stopped_by_a_signal_is_named_with_how_to_resume_it(
    tmp_path: Path,
) -> None:
    service, broker = (subprocess.Popen(["sleep", "60"]) for _ in range(2))
    try:
        for process in (service, broker):
            os.kill(process.pid, signal.SIGSTOP)
            while not is_stopped(process.pid):
                time.sleep(0.01)
        bootstrap = f"127.0.0.1:{_closed_port()}"
        stack = {
            "pid": os.getpid(),
            "bootstrap_servers": bootstrap,
            "broker_pid": broker.pid,
            "log_dir": str(tmp_path / "logs"),
            "services": {
                "cards": {"url": f"http://127.0.0.1:{_closed_port()}", "pid": service.pid}
            },
        }
        (tmp_path / "stack.json").write_text(json.dumps(stack))
        result = CliRunner().invoke(status_app, ["--json", "--state-dir", str(tmp_path)])
    finally:
        for process in (service, broker):
            process.kill()
            process.wait()
    assert result.exit_code == 1
    assert json.loads(result.stdout)["problems"] == [
        f"the broker at {bootstrap} did not answer (KafkaConnectionError): its process (pid"
        f" {broker.pid}) is stopped (SIGSTOP or Ctrl-Z), not hung: `kill -CONT {broker.pid}`"
        " resumes it. Until it is back the services keep their events in their outboxes, and"
        " consumer lag and dead letters cannot be read",
        f"cards is not ready (its process (pid {service.pid}) is stopped (SIGSTOP or Ctrl-Z),"
        f" not hung: `kill -CONT {service.pid}` resumes it)",
    ]
    assert not is_stopped(os.getpid())
