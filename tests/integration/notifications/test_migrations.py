"""Migration 0004 on a database that already holds data: failure texts stored before they
were masked are masked like `without_addresses` masks new ones; check-ins recorded before
read as refunds."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import asyncpg
import pytest

from services.notifications.outcomes import without_addresses
from shared.db import create_pool, migrate_service
from tests.integration.notifications.conftest import MIGRATIONS, NOW

pytestmark = pytest.mark.integration

# Texts as the worker stored them before ea23a9b, each masked as the Python patterns would.
STORED = [
    "SMTP 550: 5.1.1 <jan.peeters@example.be>: Recipient address rejected",
    "HTTP 410 from https://hooks.example.org/t/s3cr3t?x=1 refused",
    "unexpected InvalidURL: Invalid URL 'HTTP://user@host.example/x' and an.maes+1@mail.example.be",
    "see:https://a.example/b, not xhttps://c.example/d nor ftp://files.example.org",
    "SMTP 451: try again later",
]
CUT = "SMTP 550: 5.1.1 " + "x" * 267 + " <an.peeters@exam"  # 300 characters, cut mid-address


async def test_0004_masks_stored_failure_texts_and_keeps_old_checkins_refunds(
    database: str, tmp_path: Path
) -> None:
    # shared.db.migrate applies what a directory holds and skips what schema_migrations
    # records (name and digest): a directory with 0001-0003 only is the database as it
    # was, and the real directory then applies 0004 alone, as in a deployment.
    before = tmp_path / "migrations"
    before.mkdir()
    for path in sorted(MIGRATIONS.glob("*.sql")):
        if path.name < "0004":
            shutil.copy(path, before / path.name)
    pool = await create_pool(database)
    try:
        await migrate_service(pool, before)
        for text in [*STORED, CUT, None]:
            await _delivery(pool, text)
        claim = uuid.uuid4()
        await pool.execute(
            "INSERT INTO checkins (claim_id, provider_id, approved, occurred_at)"
            " VALUES ($1, $2, true, $3)",
            claim,
            uuid.uuid4(),
            NOW,
        )

        await migrate_service(pool, MIGRATIONS)

        applied = await pool.fetch("SELECT name FROM schema_migrations ORDER BY name")
        assert "0004_till_discount_and_masked_errors.sql" in {r["name"] for r in applied}
        masked = {r["body"]: r["last_error"] for r in await pool.fetch("SELECT * FROM deliveries")}
        for text in STORED:
            assert masked[text] == without_addresses(text)
        assert masked[STORED[0]] == "SMTP 550: 5.1.1 <<address>>: Recipient address rejected"
        assert masked[STORED[2]] == "unexpected InvalidURL: Invalid URL '<url> and <address>"
        assert masked[STORED[4]] == STORED[4]
        # Cut before it was masked, the address has no dot left: masked all the same.
        assert masked[CUT] == CUT.removesuffix("an.peeters@exam") + "<address>"
        assert masked[""] is None
        assert not await pool.fetchval(
            "SELECT till_discount FROM checkins WHERE claim_id = $1", claim
        )
    finally:
        await pool.close()


async def _delivery(pool: asyncpg.Pool, last_error: str | None) -> None:
    """A dead delivery whose body names its error text, to find it again."""
    await pool.execute(
        "INSERT INTO deliveries (delivery_id, event_id, correlation_id, kind, recipient,"
        " channel, address, subject, body, status, last_error)"
        " VALUES ($1, $2, 'c-test', 'refund_approved', $3, 'email', 'an@example.org', 's',"
        " $4, 'dead', $5)",
        uuid.uuid4(),
        uuid.uuid4(),
        f"holder:{uuid.uuid4()}",
        last_error or "",
        last_error,
    )
