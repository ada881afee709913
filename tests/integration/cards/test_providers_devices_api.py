"""Providers with a sealed bank account, activities, devices with Ed25519 keys (shown once),
rotation and revocation, and the printable card."""

from __future__ import annotations

import base64
import random

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.checkin_signature import public_key_b64
from shared.sealing import unseal
from tests.integration.cards.conftest import Desk, new_holder
from vtp.demo.municipality import iban

PROVIDER = {"name": "Jeugddienst", "sub_municipality": "Heist-Centrum", "mode": "till_discount"}


async def test_provider_account_is_sealed_for_finance(desk: Desk) -> None:
    account = iban(random.Random(7))
    created = await desk.admin.post("/providers", json={**PROVIDER, "iban": account})
    assert created.status_code == 201, created.text
    [event] = await desk.outbox("cards.provider-registered.v1")
    assert event["mode"] == "till_discount"
    assert unseal(desk.finance_private_key, event["beneficiary_sealed"]) == {
        "name": "Jeugddienst",
        "iban": account,
    }
    assert account.encode() not in await desk.all_outbox_bytes()
    bad = await desk.admin.post("/providers", json={**PROVIDER, "iban": "BE00"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "iban"


async def test_provider_admin_scope_and_changes(desk: Desk) -> None:
    mine = (await desk.admin.post("/providers", json=PROVIDER)).json()["id"]
    theirs = (await desk.admin.post("/providers", json={**PROVIDER, "name": "Sport"})).json()["id"]
    admin = desk.client(await desk.token("provider_admin", provider_id=mine))
    assert (await admin.post("/providers", json=PROVIDER)).status_code == 403
    renamed = await admin.put(f"/providers/{mine}", json={**PROVIDER, "name": "Jeugddienst Heist"})
    assert renamed.status_code == 200
    mode = await admin.put(f"/providers/{mine}", json={**PROVIDER, "mode": "refund"})
    assert mode.status_code == 403  # who gets paid is the program's decision
    assert (await admin.put(f"/providers/{theirs}", json=PROVIDER)).status_code == 403
    assert [p["name"] for p in (await admin.get("/providers")).json()] == ["Jeugddienst Heist"]
    events = await desk.outbox("cards.provider-registered.v1")
    assert [e["name"] for e in events] == ["Jeugddienst", "Sport", "Jeugddienst Heist"]

    activity = {
        "activity_id": "speelplein",
        "name": "Speelpleinwerking",
        "category": "youth",
        "price_cents": 500,
    }
    assert (await admin.put(f"/providers/{mine}/activities", json=activity)).status_code == 200
    bad = await admin.put(f"/providers/{mine}/activities", json={**activity, "category": "party"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "category"
    listed = (await admin.get(f"/providers/{mine}/activities")).json()
    assert [(a["activity_id"], a["category"]) for a in listed] == [("speelplein", "youth")]
    assert (await admin.get(f"/providers/{theirs}/activities")).status_code == 403


async def test_device_keys_register_rotate_revoke(desk: Desk) -> None:
    provider = (await desk.admin.post("/providers", json=PROVIDER)).json()["id"]
    admin = desk.client(await desk.token("provider_admin", provider_id=provider))
    device = (await admin.post(f"/providers/{provider}/devices")).json()
    private = Ed25519PrivateKey.from_private_bytes(base64.b64decode(device["private_key"]))
    assert public_key_b64(private) == device["public_key"] and device["key_id"] == 1
    async with desk.pool.acquire() as conn:
        kept = await conn.fetchrow(
            "SELECT * FROM devices WHERE device_id = $1::uuid", device["device_id"]
        )
    assert kept is not None
    assert device["private_key"] not in str(dict(kept))

    rotated = await admin.post(
        f"/devices/{device['device_id']}/rotate", json={"reason": "tablet lost"}
    )
    assert rotated.status_code == 200
    assert rotated.json()["key_id"] == 2 and rotated.json()["public_key"] != device["public_key"]
    path = f"/devices/{device['device_id']}/revoke"
    typed = "gestolen uit de auto van Jan Peeters"
    unknown = await admin.post(path, json={"reason": typed})
    assert unknown.status_code == 422 and typed not in unknown.text
    assert unknown.json()["errors"] == [
        {
            "field": "reason",
            "reason": "must be one of: lost, stolen, replaced, provider_stopped,"
            " key_compromised, other",
        }
    ]
    revoked = await admin.post(path, json={"reason": "stolen", "note": typed})
    assert revoked.status_code == 200
    again = await admin.post(f"/devices/{device['device_id']}/rotate", json={"reason": "x"})
    assert again.status_code == 409 and "revoked" in again.json()["detail"]

    registered = await desk.outbox("cards.device-registered.v1")
    assert [(e["key_id"], e["public_key"]) for e in registered] == [
        (1, device["public_key"]),
        (2, rotated.json()["public_key"]),
    ]
    [revocation] = await desk.outbox("cards.device-revoked.v1")
    assert revocation["reason"] == "stolen" and revocation["device_id"] == device["device_id"]
    published = await desk.all_outbox_bytes()
    assert typed.encode() not in published and "note" not in revocation
    async with desk.pool.acquire() as conn:
        stored = await conn.fetchrow(
            "SELECT revoke_reason, revoke_note FROM devices WHERE device_id = $1::uuid",
            device["device_id"],
        )
    assert stored is not None and tuple(stored) == ("stolen", typed)
    for secret in (device["private_key"], rotated.json()["private_key"]):
        assert secret.encode() not in published
        assert base64.b64decode(secret) not in published
    assert b"private_key" not in published

    other = (await desk.admin.post("/providers", json={**PROVIDER, "name": "Ander"})).json()["id"]
    assert (await admin.post(f"/providers/{other}/devices")).status_code == 403
    assert (await desk.referrer.post(f"/providers/{provider}/devices")).status_code == 403


async def test_qr_and_printable_card(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 31)
    qr = (await desk.referrer.get(f"/cards/{ids['card_id']}/qr")).json()
    assert qr["qr_payload"] == f"VTP:1:{ids['card_number']}"
    pdf = await desk.referrer.get(f"/cards/{ids['card_id']}/card.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    assert b"/MediaBox [ 0 0 242.6457 153.0142 ]" in pdf.content  # 85.60 x 53.98 mm
    assert b"Persoon31" not in pdf.content  # no name on the card
