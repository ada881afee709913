"""Seeding the demo municipality through the cards service's HTTP API, as people would."""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from shared import localtime
from shared.events.checkins import Activity, ActivityCategory
from vtp.demo.municipality import PROVIDERS, REFERRERS, iban, identity_of, person
from vtp.device.signer import DeviceIdentity
from vtp.devstack.stack import read_keys


@dataclass
class SeededDevice:
    identity: DeviceIdentity
    activities: list[tuple[Activity, int]]


@dataclass
class Seeded:
    devices: list[SeededDevice] = field(default_factory=list)
    card_numbers: list[str] = field(default_factory=list)
    referrers: list[str] = field(default_factory=list)
    holders: list[SeededHolder] = field(default_factory=list)
    provider_ids: list[str] = field(default_factory=list)  # in the order of PROVIDERS


@dataclass(frozen=True)
class SeededHolder:
    holder_id: str
    card_number: str
    target_group: str


async def _register(
    client: httpx.AsyncClient, data: Mapping[str, object], identity: random.Random
) -> Any:
    """Register a person; a national number someone already has is drawn again."""
    for _ in range(5):
        response = await client.post("/people", json=data)
        if response.status_code == 409 and "national_number" in response.text:
            data = {**data, **identity_of(identity)}
            continue
        if response.status_code >= 400:
            raise RuntimeError(
                f"POST /people failed with {response.status_code}: {response.text[:300]}"
            )
        return response.json()
    raise RuntimeError("POST /people: five national numbers in a row were taken")


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any] | None = None) -> Any:
    response = await client.post(path, json=body)
    if response.status_code >= 400:
        raise RuntimeError(f"POST {path} failed with {response.status_code}: {response.text[:300]}")
    return response.json()


def admin_token(cards_url: str) -> str:
    """The bootstrap administrator's token of the stack serving `cards_url`: `vtp up` keeps
    its keys in the state folder, a demo's own stack in its `demo` subfolder."""
    root = Path(os.environ.get("VTP_STATE_DIR", ".vtp")).resolve()
    for folder in (root, root / "demo"):
        try:
            state = json.loads((folder / "stack.json").read_text())
            keys = read_keys(folder)
        except (OSError, ValueError, RuntimeError):
            continue
        if state.get("services", {}).get("cards", {}).get("url") == cards_url:
            return str(keys["api_token_secret"])
    raise RuntimeError(f"no stack state found for {cards_url} under {root}")


async def seed(
    cards_url: str,
    holders: int,
    rng: random.Random,
    progress: Any = None,
    token: str | None = None,
) -> Seeded:
    result = Seeded()
    headers = {
        "Authorization": f"Bearer {token or admin_token(cards_url)}",
        "X-Audit-Reason": "demo seed",
    }
    async with httpx.AsyncClient(base_url=cards_url, timeout=30, headers=headers) as client:
        for name, kind, email in REFERRERS:
            org = await _post(
                client, "/organisations", {"name": name, "kind": kind, "contact_email": email}
            )
            result.referrers.append(org["id"])
        for provider in PROVIDERS:
            created = await _post(
                client,
                "/providers",
                {
                    "name": provider.name,
                    "sub_municipality": provider.sub_municipality,
                    "mode": provider.mode,
                    # Till-discount providers are reimbursed: finance needs their account.
                    **({"iban": iban(rng)} if provider.mode == "till_discount" else {}),
                },
            )
            result.provider_ids.append(str(created["id"]))
            activities = [
                (Activity(id=a_id, category=ActivityCategory(cat), name=a_name), price)
                for a_id, cat, a_name, price in provider.activities
            ]
            for _ in range(2):
                device = await _post(client, f"/providers/{created['id']}/devices")
                result.devices.append(
                    SeededDevice(DeviceIdentity.from_registration(device), activities)
                )

        semaphore = asyncio.Semaphore(8)
        today = localtime.today()

        # Profiles are drawn in order before the concurrent registrations, so the same seed
        # gives the same holders (target group, channel) whatever order the requests finish in.
        identity = random.Random()  # fresh national numbers on every run: people are unique
        profiles = [
            person(rng, rng.choice(result.referrers), index, identity) for index in range(holders)
        ]

        async def one(index: int) -> SeededHolder:
            async with semaphore:
                data = profiles[index]
                group = str(data.pop("_target_group"))
                created = await _register(client, data, identity)
                await _post(
                    client,
                    f"/people/{created['id']}/eligibility",
                    {
                        "target_group": group,
                        "eligible_from": (today - timedelta(days=400)).isoformat(),
                        "eligible_until": (today + timedelta(days=365)).isoformat(),
                        "grace_days": 30,
                    },
                )
                card = await _post(client, f"/people/{created['id']}/cards")
                if progress is not None:
                    progress()
                return SeededHolder(str(created["id"]), str(card["card_number"]), group)

        result.holders = list(await asyncio.gather(*(one(i) for i in range(holders))))
        result.card_numbers = [h.card_number for h in result.holders]
    return result
