"""The cards API in-process (httpx + ASGI) on a real, fresh PostgreSQL database per test."""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

import services.cards
from services.cards.api import build_app
from services.cards.settings import CardsSettings
from shared import localtime
from shared.db import create_pool, migrate_service
from shared.sealing import generate_keypair
from vtp.demo.municipality import iban, national_number

MIGRATIONS = Path(services.cards.__file__).parent / "migrations"
BOOTSTRAP_TOKEN = "bootstrap-" + "x" * 40


@dataclass
class Desk:
    """The API, its database, and clients for the roles a test needs."""

    pool: asyncpg.Pool
    settings: CardsSettings
    finance_private_key: str
    transport: httpx.ASGITransport
    admin: httpx.AsyncClient
    org_id: str
    referrer: httpx.AsyncClient
    notifications_private_key: str

    def client(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=self.transport,
            base_url="http://cards",
            headers={"Authorization": f"Bearer {token}"},
        )

    async def token(self, role: str, **scope: str) -> str:
        response = await self.admin.post(
            "/api-tokens", json={"label": f"test {role}", "role": role, **scope}
        )
        assert response.status_code == 201, response.text
        return str(response.json()["token"])

    async def organisation(self, name: str = "OCMW Test", kind: str = "ocmw") -> str:
        response = await self.admin.post("/organisations", json={"name": name, "kind": kind})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def outbox(self, topic: str) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT payload FROM outbox WHERE topic = $1 ORDER BY seq", topic
            )
        return [json.loads(r["payload"]) for r in rows]

    async def all_outbox_bytes(self) -> bytes:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT headers::text AS h, payload FROM outbox")
        return b"\n".join(r["h"].encode() + bytes(r["payload"]) for r in rows)


def person_body(seed: int = 0, **overrides: Any) -> dict[str, Any]:
    rng = random.Random(seed)
    born = date(1970 + seed % 30, 1 + seed % 12, 1 + seed % 28)
    body: dict[str, Any] = {
        "first_name": "Testa",
        "last_name": f"Persoon{seed}",
        "date_of_birth": born.isoformat(),
        "national_number": national_number(rng, born),
        "iban": iban(rng),
        "email": f"p{seed}@example.org",
        "address": "Kerkstraat 1, 2220 Heist-op-den-Berg",
        "sub_municipality": "Hallaar",
    }
    body.update(overrides)
    return body


def grant_body(**overrides: Any) -> dict[str, Any]:
    today = localtime.today()
    body: dict[str, Any] = {
        "target_group": "poverty",
        "eligible_from": (today - timedelta(days=10)).isoformat(),
        "eligible_until": (today + timedelta(days=365)).isoformat(),
        "grace_days": 30,
        "evidence_ref": "dossier-1",
    }
    body.update(overrides)
    return body


async def new_holder(
    client: httpx.AsyncClient, seed: int, *, card: bool = True, **grant: Any
) -> dict[str, str]:
    """A person with a grant and (by default) a card; their ids."""
    created = await client.post("/people", json=person_body(seed))
    assert created.status_code == 201, created.text
    person_id = created.json()["id"]
    granted = await client.post(f"/people/{person_id}/eligibility", json=grant_body(**grant))
    assert granted.status_code == 201, granted.text
    ids = {"person_id": person_id, "eligibility_id": granted.json()["id"]}
    if card:
        issued = await client.post(f"/people/{person_id}/cards")
        assert issued.status_code == 201, issued.text
        ids.update(issued.json())
    return ids


@pytest.fixture
async def desk(database: str) -> AsyncIterator[Desk]:
    pool = await create_pool(database)
    await migrate_service(pool, MIGRATIONS)
    _finance_private, finance_public = generate_keypair()
    notifications_private, notif_public = generate_keypair()
    settings = CardsSettings(
        database_url=database,
        master_key=os.urandom(32).hex(),
        finance_public_key=finance_public,
        notifications_public_key=notif_public,
        api_token_secret=BOOTSTRAP_TOKEN,
    )
    transport = httpx.ASGITransport(app=build_app(settings, lambda: pool))
    admin = httpx.AsyncClient(
        transport=transport,
        base_url="http://cards",
        headers={"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"},
    )
    provisional = Desk(
        pool, settings, _finance_private, transport, admin, "", admin, notifications_private
    )
    org_id = await provisional.organisation()
    referrer = provisional.client(await provisional.token("referrer", organisation_id=org_id))
    ready = Desk(
        pool, settings, _finance_private, transport, admin, org_id, referrer, notifications_private
    )
    try:
        yield ready
    finally:
        await referrer.aclose()
        await admin.aclose()
        await pool.close()


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
