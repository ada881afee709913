"""Every letter is printed exactly once: when the database connection drops while the
letters batch commits, the PDF stays if the batch was recorded (its letters are marked
printed and will not come again) and goes only if it was not (they come in the next one)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from asyncpg.transaction import Transaction
from pypdf import PdfReader

from services.notifications.jobs import Jobs
from tests.integration.notifications.conftest import NOW, Feed, approved, holder, organisation

pytestmark = pytest.mark.integration

_COMMIT = "_Transaction__commit"


def _dropping_at_commit(
    real: Callable[[Transaction], Awaitable[None]], *, after: bool
) -> Callable[[Transaction], Awaitable[None]]:
    """A COMMIT whose answer is lost (after=True: the server did commit) or that never
    reached the server (after=False)."""

    async def commit(self: Transaction) -> None:
        if after:
            await real(self)
        raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of it")

    return commit


async def _queue_letters(feed: Feed, keys: tuple[str, str], count: int) -> None:
    org, person = uuid.uuid4(), uuid.uuid4()
    await feed(
        organisation(org),
        holder(person, org, keys[1], email=None, channel="letter"),
    )
    await feed(*(approved(person) for _ in range(count)))


async def _letters_losing_the_connection(
    jobs: Jobs, monkeypatch: pytest.MonkeyPatch, *, after_commit: bool
) -> None:
    """The letters job, its connection dropped at COMMIT: after the server committed, or
    before the COMMIT reached it."""
    real: Any = getattr(Transaction, _COMMIT)
    monkeypatch.setattr(Transaction, _COMMIT, _dropping_at_commit(real, after=after_commit))
    with pytest.raises(asyncpg.ConnectionDoesNotExistError):
        await jobs.run("letters", NOW)
    monkeypatch.setattr(Transaction, _COMMIT, real)


def _pdfs(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.pdf")) if folder.exists() else []


async def test_a_batch_recorded_before_the_connection_dropped_keeps_its_file(
    feed: Feed,
    jobs: Jobs,
    pool: asyncpg.Pool,
    keys: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _queue_letters(feed, keys, 2)
    await _letters_losing_the_connection(jobs, monkeypatch, after_commit=True)

    # The batch was recorded: its letters are marked printed in this file...
    refs = await pool.fetch("SELECT status, batch_ref FROM deliveries WHERE batch = 'letters'")
    assert {(r["status"], r["batch_ref"]) for r in refs} == {("sent", refs[0]["batch_ref"])}
    files = _pdfs(jobs.settings.letters_dir)
    assert [f.name for f in files] == [refs[0]["batch_ref"]]  # ...which must still be there
    assert len(PdfReader(files[0]).pages) == 2
    # ...and no later batch prints them again.
    assert (await jobs.run("letters", NOW))["letters"] == 0


async def test_a_batch_not_recorded_leaves_no_file_and_its_letters_for_the_next(
    feed: Feed,
    jobs: Jobs,
    pool: asyncpg.Pool,
    keys: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await _queue_letters(feed, keys, 2)
    await _letters_losing_the_connection(jobs, monkeypatch, after_commit=False)

    assert _pdfs(jobs.settings.letters_dir) == []
    result = await jobs.run("letters", NOW)
    assert result["letters"] == 2
    assert [f.name for f in _pdfs(jobs.settings.letters_dir)] == [Path(result["file"]).name]
