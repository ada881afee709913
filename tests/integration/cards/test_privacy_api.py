"""Right of access and right to erasure at the desk: export everything; after erasure the
data cannot be decrypted, the opaque id and its events remain, and the person is gone from
every lookup."""

from __future__ import annotations

from services.cards.personal_data import PersonalDataVault
from shared.sealing import unseal
from tests.integration.cards.conftest import Desk, new_holder, person_body


async def test_export_holds_everything(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 41)
    await desk.referrer.post(f"/cards/{ids['card_id']}/block", json={"reason": "lost"})
    export = await desk.referrer.get(f"/people/{ids['person_id']}/export")
    assert export.status_code == 200
    data = export.json()
    expected = person_body(41)
    for key in ("first_name", "last_name", "national_number", "iban", "email", "address"):
        assert data["personal_data"][key] == expected[key]
    assert [c["card_number"] for c in data["cards"]] == [ids["card_number"]]
    assert data["eligibilities"][0]["target_group"] == "poverty"
    actions = {e["action"] for e in data["audit_trail"]}
    assert {"person.registered", "card.issued", "card.block"} <= actions
    trail = (await desk.admin.get("/audit", params={"subject_id": ids["person_id"]})).json()
    assert trail[0]["action"] == "person.exported"  # reading a file is on the record too


async def _tables_holding(desk: Desk, secret: bytes) -> set[str]:
    """The tables of the cards database with a row that holds these bytes (rows as text:
    bytea columns are hex)."""
    found = set()
    async with desk.pool.acquire() as conn:
        for table in ("people", "eligibilities", "cards", "audit_log", "outbox", "inbox"):
            rows = await conn.fetch(f"SELECT t::text AS line FROM {table} t")
            if any(secret.hex() in r["line"] for r in rows):
                found.add(table)
    return found


async def test_erasure_shreds_the_key(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 42)
    async with desk.pool.acquire() as conn:
        before = await conn.fetchrow(
            "SELECT data_key, sealed_data FROM people WHERE person_id = $1::uuid", ids["person_id"]
        )
    assert before is not None
    assert await _tables_holding(desk, before["data_key"]) == {"people"}
    refused = await desk.referrer.post(
        f"/people/{ids['person_id']}/erasure", json={"reason": "asked"}
    )
    assert refused.status_code == 403  # the program administrator decides erasure
    erased = await desk.admin.post(
        f"/people/{ids['person_id']}/erasure", json={"reason": "GDPR art. 17 request"}
    )
    assert erased.status_code == 200, erased.text

    async with desk.pool.acquire() as conn:
        after = await conn.fetchrow(
            "SELECT data_key, sealed_data, national_number_hash, erased_at FROM people"
            " WHERE person_id = $1::uuid",
            ids["person_id"],
        )
        card_status = await conn.fetchval(
            "SELECT status FROM cards WHERE card_id = $1::uuid", ids["card_id"]
        )
    assert before is not None and after is not None
    assert after["data_key"] is None and after["national_number_hash"] is None
    assert after["sealed_data"] == before["sealed_data"]  # ciphertext stays, unreadable
    vault = PersonalDataVault(desk.settings.master_key)
    assert vault.decrypt(before["data_key"], before["sealed_data"])["last_name"] == "Persoon42"
    # The destroyed key was kept in the person's row only, and now nowhere: nothing opens it.
    assert await _tables_holding(desk, before["data_key"]) == set()
    assert card_status == "revoked"

    [revocation] = await desk.outbox("cards.card-status-changed.v1")
    assert (revocation["status"], revocation["reason"]) == ("revoked", "holder_erased")
    [event] = await desk.outbox("cards.holder-erased.v1")
    assert event["holder_id"] == ids["person_id"]
    issued = await desk.outbox("cards.card-issued.v1")
    assert [e["holder_id"] for e in issued] == [ids["person_id"]]  # events keep the opaque id
    for path in ("", "/export"):
        gone = await desk.admin.get(f"/people/{ids['person_id']}{path}")
        assert gone.status_code == 409 and "erased" in gone.json()["detail"]
    again = await desk.admin.post(f"/people/{ids['person_id']}/erasure", json={"reason": "x"})
    assert again.status_code == 409
    # The number is no longer findable: the person may be registered anew.
    assert (await desk.referrer.post("/people", json=person_body(42))).status_code == 201


async def test_erasure_also_forgets_what_was_typed_about_the_person(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 43, evidence_ref="dossier Jan Peeters 2026/17")
    note = "kwijt bij Jan Peeters thuis"
    blocked = await desk.referrer.post(
        f"/cards/{ids['card_id']}/block", json={"reason": "lost", "note": note}
    )
    assert blocked.status_code == 200, blocked.text
    async with desk.pool.acquire() as conn:
        typed = await conn.fetchval(
            "SELECT count(*) FROM (SELECT evidence_ref AS t FROM eligibilities"
            " UNION ALL SELECT status_note FROM cards UNION ALL SELECT reason FROM audit_log) x"
            " WHERE t LIKE '%Jan Peeters%'"
        )
    assert typed >= 3  # the evidence, the card's note, the audit entries
    assert note.encode() not in await desk.all_outbox_bytes()  # never sent to other services

    erased = await desk.admin.post(
        f"/people/{ids['person_id']}/erasure", json={"reason": "GDPR art. 17 request"}
    )
    assert erased.status_code == 200, erased.text
    async with desk.pool.acquire() as conn:
        left = await conn.fetch(
            "SELECT t::text AS line FROM eligibilities t UNION ALL SELECT c::text FROM cards c"
            " UNION ALL SELECT a::text FROM audit_log a"
        )
        actions = await conn.fetch(
            "SELECT action FROM audit_log WHERE subject_id = $1", ids["card_id"]
        )
    assert not [r["line"] for r in left if "Jan Peeters" in r["line"]]
    # Who did what stays on the record; the erasure's own reason is written after.
    assert {"card.issued", "card.block"} <= {r["action"] for r in actions}


async def test_erasure_withdraws_the_holders_details_not_yet_published(desk: Desk) -> None:
    """Details changed while the broker was away (or parked by the relay) still wait in the
    outbox at erasure: sealed for finance, they hold the name and the bank account. They are
    withdrawn, so no service learns the details of a person who is already erased; another
    person's waiting details stay."""
    ids = await new_holder(desk.referrer, 44)
    other = await new_holder(desk.referrer, 45, card=False)
    changed = await desk.referrer.patch(
        f"/people/{ids['person_id']}", json={"email": "nieuw@example.org"}
    )
    assert changed.status_code == 200, changed.text
    topic = "cards.holder-details-changed.v1"
    waiting = [e for e in await desk.outbox(topic) if e["holder_id"] == ids["person_id"]]
    assert len(waiting) == 2
    assert unseal(desk.finance_private_key, waiting[0]["beneficiary_sealed"])["name"] == (
        "Testa Persoon44"
    )

    erased = await desk.admin.post(
        f"/people/{ids['person_id']}/erasure", json={"reason": "art. 17"}
    )
    assert erased.status_code == 200, erased.text
    left = await desk.outbox(topic)
    assert [e["holder_id"] for e in left] == [other["person_id"]]
    assert [e["holder_id"] for e in await desk.outbox("cards.holder-erased.v1")] == [
        ids["person_id"]
    ]
