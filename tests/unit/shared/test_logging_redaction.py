from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import structlog
from pydantic import BaseModel

from shared.logging import REDACTED, configure_logging, get_logger, log_context, redact_text


@pytest.mark.parametrize(
    "text",
    [
        "payee BE68539007547034 done",
        "iban BE68 5390 0754 7034",
        "nn 85.07.30-033.61 seen",
        "nn 85073003361",
        "iban BE68-5390-0754-7034",
        "nn 85 07 30 033 61",
        "nn 850730-033-61",
    ],
)
def test_ibans_and_national_numbers_are_masked(text: str) -> None:
    masked = redact_text(text)
    assert REDACTED in masked
    for secret in ("5390", "0754", "7034", "033.61", "033 61", "033-61", "85073003361"):
        assert secret not in masked


@dataclass
class _Holder:
    name: str
    note: str


class _Payee(BaseModel):
    iban: str
    amount_cents: int


@pytest.mark.parametrize(
    ("value", "secret"),
    [
        (_Holder(name="Jan Peeters", note="ok"), "Jan Peeters"),
        (_Payee(iban="NL91ABNA0417164300", amount_cents=1250), "NL91ABNA0417164300"),
        (b"nn 85073003361", "85073003361"),
        (ValueError("no account BE68539007547034"), "BE68539007547034"),
        ({"85073003361"}, "85073003361"),
    ],
)
def test_whole_objects_logged_by_mistake_are_masked(
    json_lines: Lines, value: object, secret: str
) -> None:
    get_logger("t").info("object", value=value)
    line = json.dumps(json_lines()[-1])
    assert secret not in line
    assert REDACTED in line


def test_times_and_numbers_objects_are_logged_as_they_are(json_lines: Lines) -> None:
    at = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    get_logger("t").info("times", at=at, amount=Decimal("12.50"))
    line = json_lines()[-1]
    assert line["at"] == at.isoformat()
    assert REDACTED not in json.dumps(line)


def test_card_numbers_and_uuids_stay_readable() -> None:
    text = "card 6299123456789 id 0190e1c2-7d3e-7abc-8def-0123456789ab"
    assert redact_text(text) == text


Lines = Callable[[], list[dict[str, Any]]]


@pytest.fixture
def json_lines(monkeypatch: pytest.MonkeyPatch) -> Iterator[Lines]:
    """Logging set up as a service's, on stdout; the lines written so far, parsed."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    configure_logging("test", json=True)
    try:
        yield lambda: [json.loads(line) for line in out.getvalue().splitlines()]
    finally:
        structlog.reset_defaults()


def test_log_lines_are_json_with_correlation_id_and_no_personal_fields(
    json_lines: Lines,
) -> None:
    with log_context(correlation_id="corr-1"):
        get_logger("t").info(
            "registered", name="Jan Peeters", iban="BE68539007547034", note="nn 85073003361"
        )
    line = json_lines()[-1]
    assert line["correlation_id"] == "corr-1"
    assert line["service"] == "test"
    assert line["name"] == REDACTED and line["iban"] == REDACTED
    assert "85073003361" not in json.dumps(line)
    assert list(line)[-2:] == ["level", "timestamp"] and line["level"] == "info"
    assert line["timestamp"].endswith("Z")


def test_bound_values_nest_give_way_to_the_line_and_end_with_their_block(
    json_lines: Lines,
) -> None:
    log = get_logger("t")
    with log_context(correlation_id="outer", batch=7):
        with log_context(correlation_id="inner"):
            log.info("one")
            log.info("two", batch=8)
        log.info("three")
    log.info("four")
    lines = json_lines()
    assert [(x["event"], x.get("correlation_id"), x.get("batch")) for x in lines] == [
        ("one", "inner", 7),
        ("two", "inner", 8),
        ("three", "outer", 7),
        ("four", None, None),
    ]
    assert {x["service"] for x in lines} == {"test"}


async def test_a_task_keeps_the_values_bound_when_it_was_started(json_lines: Lines) -> None:
    log = get_logger("t")
    release = asyncio.Event()

    async def later() -> None:
        await release.wait()
        log.info("from the task")

    with log_context(correlation_id="c-task"):
        task = asyncio.create_task(later())
    with log_context(correlation_id="c-other"):
        release.set()
        await task
    [line] = json_lines()
    assert line["correlation_id"] == "c-task"


def test_any_value_can_be_logged(json_lines: Lines) -> None:
    """Values the JSON encoder has no encoding for still make a line, never an error."""

    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    get_logger("t").info("odd values", thing=Opaque(), huge=2**70, by_number={1: "one"})
    line = json_lines()[-1]
    assert line["thing"] == "<opaque>"
    assert line["huge"] == 2**70
    assert line["by_number"] == {"1": "one"}


class _FlushCounting(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0
        self.flushed = ""  # what had been written at the last flush

    def flush(self) -> None:
        self.flushes += 1
        self.flushed = self.getvalue()


async def test_info_lines_are_flushed_once_per_event_loop_turn_warnings_at_once() -> None:
    out = _FlushCounting()
    configure_logging("test", json=True, stream=out)
    try:
        log = get_logger("t")
        for n in range(3):
            log.info("claim decided", n=n)
        assert out.flushes == 0
        await asyncio.sleep(0)  # the end of this turn of the loop
        assert out.flushes == 1 and out.flushed.count("claim decided") == 3
        log.info("claim decided", n=3)
        log.warning("fault injected")  # the process may be killed in the next instant
        assert out.flushes == 2 and "fault injected" in out.flushed
        assert out.flushed.count("claim decided") == 4
    finally:
        structlog.reset_defaults()


def test_without_an_event_loop_every_line_is_flushed() -> None:
    out = _FlushCounting()
    configure_logging("test", json=True, stream=out)
    try:
        get_logger("t").info("a command-line tool says")
        assert out.flushes == 1 and "a command-line tool says" in out.flushed
    finally:
        structlog.reset_defaults()
