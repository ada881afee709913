"""A provider's bank account for till-discount reimbursements: validated with schwifty
(refusals name the field, never echo the value), sealed for finance as {name, iban} on
ProviderRegistered at registration and on change, and kept nowhere readable — not in the
providers table, the audit log, the outbox, or any API answer."""

from __future__ import annotations

import random
from typing import Any

from shared.sealing import unseal
from tests.integration.cards.conftest import Desk
from vtp.demo.municipality import iban

TOPIC = "cards.provider-registered.v1"
PROVIDER = {"name": "Jeugdhuis De Kajuit", "sub_municipality": "Hallaar", "mode": "till_discount"}


def grouped(value: str) -> str:
    """How people type an IBAN: lower case, in groups of four."""
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4)).lower()


async def readable_everywhere(desk: Desk) -> bytes:
    """Everything the cards service stored about providers, as text."""
    async with desk.pool.acquire() as conn:
        rows = await conn.fetch("SELECT p::text AS t FROM providers p")
        audit = await conn.fetch("SELECT a::text AS t FROM audit_log a")
    stored = "\n".join(r["t"] for r in [*rows, *audit]).encode()
    return stored + await desk.all_outbox_bytes()


async def opened(desk: Desk) -> list[dict[str, Any] | None]:
    """Each ProviderRegistered's beneficiary as finance opens it."""
    return [
        unseal(desk.finance_private_key, e["beneficiary_sealed"])
        if e["beneficiary_sealed"]
        else None
        for e in await desk.outbox(TOPIC)
    ]


async def test_registration_seals_name_and_iban_for_finance_only(desk: Desk) -> None:
    account = iban(random.Random(11))
    created = await desk.admin.post("/providers", json={**PROVIDER, "iban": grouped(account)})
    assert created.status_code == 201, created.text
    assert await opened(desk) == [{"name": "Jeugdhuis De Kajuit", "iban": account}]
    assert account.encode() not in await readable_everywhere(desk)
    assert grouped(account).encode() not in await readable_everywhere(desk)
    [listed] = (await desk.admin.get("/providers")).json()
    assert listed["has_bank_account"] is True
    assert account not in str(listed) and "beneficiary_sealed" not in listed

    # Without an IBAN nothing is sealed: refund-mode providers are never paid by us.
    plain = await desk.admin.post("/providers", json={**PROVIDER, "mode": "refund"})
    assert plain.status_code == 201
    assert (await opened(desk))[-1] is None


async def test_a_separate_account_holder_is_sealed_under_its_own_name(desk: Desk) -> None:
    account = iban(random.Random(12))
    body = {**PROVIDER, "iban": account, "account_holder": "vzw Jeugdwerk Hallaar"}
    assert (await desk.admin.post("/providers", json=body)).status_code == 201
    assert await opened(desk) == [{"name": "vzw Jeugdwerk Hallaar", "iban": account}]


async def test_invalid_ibans_are_refused_naming_the_field(desk: Desk) -> None:
    account = iban(random.Random(13))
    wrong_check = account[:2] + f"{(int(account[2:4]) + 1) % 100:02d}" + account[4:]
    for value, reason in [
        (wrong_check, "check digits"),
        ("BE685390075470", "length"),
        ("", "is empty"),
        ("   ", "is empty"),
    ]:
        refused = await desk.admin.post("/providers", json={**PROVIDER, "iban": value})
        assert refused.status_code == 422, value
        [error] = refused.json()["errors"]
        assert error["field"] == "iban" and reason in error["reason"], error
        assert not value.strip() or value not in refused.text
    assert await desk.outbox(TOPIC) == []


async def test_changing_the_account_reseals_and_keeping_it_keeps_it(desk: Desk) -> None:
    first, second = iban(random.Random(14)), iban(random.Random(15))
    provider = (await desk.admin.post("/providers", json={**PROVIDER, "iban": first})).json()["id"]

    # A rename without an IBAN keeps the sealed account exactly as it was.
    renamed = {**PROVIDER, "name": "JH De Kajuit"}
    assert (await desk.admin.put(f"/providers/{provider}", json=renamed)).status_code == 200
    events = await desk.outbox(TOPIC)
    assert events[1]["name"] == "JH De Kajuit"
    assert events[1]["beneficiary_sealed"] == events[0]["beneficiary_sealed"]

    # A new IBAN is sealed under the current name and audited as a bank account change.
    changed = await desk.admin.put(f"/providers/{provider}", json={**renamed, "iban": second})
    assert changed.status_code == 200, changed.text
    assert (await opened(desk))[-1] == {"name": "JH De Kajuit", "iban": second}

    # An invalid one changes nothing.
    bad = await desk.admin.put(f"/providers/{provider}", json={**renamed, "iban": "BE00 1234"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "iban"
    assert len(await desk.outbox(TOPIC)) == 3

    async with desk.pool.acquire() as conn:
        actions = [
            r["action"]
            for r in await conn.fetch(
                "SELECT action FROM audit_log WHERE subject_id = $1 ORDER BY audit_id", provider
            )
        ]
    assert actions == [
        "provider.registered",
        "provider.changed",
        "provider.changed",
        "provider.bank_account_changed",
    ]
    stored = await readable_everywhere(desk)
    assert first.encode() not in stored and second.encode() not in stored


async def test_only_the_program_decides_where_the_money_goes(desk: Desk) -> None:
    account = iban(random.Random(16))
    provider = (await desk.admin.post("/providers", json={**PROVIDER, "iban": account})).json()[
        "id"
    ]
    own = desk.client(await desk.token("provider_admin", provider_id=provider))
    redirect = await own.put(
        f"/providers/{provider}", json={**PROVIDER, "iban": iban(random.Random(17))}
    )
    assert redirect.status_code == 403
    # The provider still maintains its other details, and its account stays as it was.
    assert (await own.put(f"/providers/{provider}", json=PROVIDER)).status_code == 200
    assert (await opened(desk))[-1] == {"name": "Jeugdhuis De Kajuit", "iban": account}
