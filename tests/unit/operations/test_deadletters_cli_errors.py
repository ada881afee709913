"""`vtp deadletters` and `vtp lag` without a broker to ask: a clear error, not a traceback."""

from __future__ import annotations

import socket

import typer
from typer.testing import CliRunner

from vtp.operations.deadletters_cli import deadletters_app
from vtp.operations.lag_cli import lag_command


def test_a_broker_that_does_not_answer_is_named_and_the_command_fails() -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    result = CliRunner().invoke(deadletters_app, ["list", "--bootstrap-servers", address])
    assert result.exit_code == 1
    assert " ".join(result.stderr.split()) == (
        f"the broker at {address} did not answer: KafkaConnectionError: is it running and"
        " reachable (and is this its address)?"
    )
    assert "Traceback" not in result.output


def test_lag_without_a_broker_names_it_and_fails() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    lag_app = typer.Typer()
    lag_app.command()(lag_command)
    result = CliRunner().invoke(lag_app, ["--bootstrap-servers", address])
    assert result.exit_code == 1
    assert " ".join(result.stderr.split()) == (
        f"the broker at {address} did not answer: KafkaConnectionError: is it running and"
        " reachable (and is this its address)?"
    )


def test_a_since_it_cannot_read_is_refused_before_the_broker_is_asked() -> None:
    result = CliRunner().invoke(
        deadletters_app,
        ["list", "--since", "yesterday", "--bootstrap-servers", "127.0.0.1:1"],
        env={"COLUMNS": "250"},  # the error box on one line
    )
    assert result.exit_code == 2
    assert "expected a time ago (45s, 90m, 6h, 2d)" in result.stderr
