"""`vtp status` when nothing answers: each absence named as a problem, exit 1."""

from __future__ import annotations

import json
import socket

import pytest
import typer
from typer.testing import CliRunner

from vtp.operations.status_cli import status_command

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
        f"the broker at {broker} did not answer (KafkaConnectionError)",
        "cards is not ready (no answer: ConnectError)",
    ]
    assert report["consumer_groups"] == []


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
