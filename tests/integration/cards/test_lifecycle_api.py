"""Must-show 1: every card lifecycle transition over the API, the refused ones with clear
messages, the events they put in the outbox, and the audit line every write leaves."""

from __future__ import annotations

import json
from datetime import timedelta

from services.cards.desk import unit
from services.cards.desk.expiry import run_expiry
from services.cards.personal_data import PersonalDataVault
from shared import localtime
from tests.integration.cards.conftest import Desk, new_holder, person_body

STATUS_TOPIC = "cards.card-status-changed.v1"
ISSUED_TOPIC = "cards.card-issued.v1"


async def test_block_unblock_revoke_and_refusals(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 1)
    card = f"/cards/{ids['card_id']}"

    blocked = await desk.referrer.post(
        f"{card}/block", json={"reason": "lost", "note": "lost on the bus"}
    )
    assert blocked.status_code == 200 and blocked.json()["status"] == "blocked"
    again = await desk.referrer.post(f"{card}/block", json={"reason": "lost"})
    assert again.status_code == 409
    assert again.json()["detail"] == (
        "status: cannot block a card that is blocked; only a card that is active can be blocked"
    )
    unblocked = await desk.referrer.post(f"{card}/unblock", json={"reason": "found"})
    assert unblocked.json()["status"] == "active"
    not_blocked = await desk.referrer.post(f"{card}/unblock", json={"reason": "found"})
    assert (
        not_blocked.status_code == 409
        and "cannot unblock a card that is active" in not_blocked.text
    )
    revoked = await desk.referrer.post(f"{card}/revoke", json={"reason": "issued_in_error"})
    assert revoked.json()["status"] == "revoked"
    for action in ("block", "unblock", "revoke", "replace"):
        why = {"reason": "other", "note": "try"}
        refused = await desk.referrer.post(f"{card}/{action}", json=why)
        assert refused.status_code == 409, action
        assert f"cannot {action} a card that is revoked" in refused.json()["detail"]

    events = await desk.outbox(STATUS_TOPIC)
    assert [(e["status"], e["reason"]) for e in events] == [
        ("blocked", "lost"),
        ("active", "found"),
        ("revoked", "issued_in_error"),
    ]
    assert {e["holder_id"] for e in events} == {ids["person_id"]}
    assert (await desk.referrer.get(card)).json()["status"] == "revoked"


async def test_a_reason_is_required(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 2)
    response = await desk.referrer.post(f"/cards/{ids['card_id']}/block", json={})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "reason", "reason": "Field required"}]


async def test_an_unknown_reason_is_refused_naming_the_codes(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 6)
    card = f"/cards/{ids['card_id']}"
    typed = "verhuisd naar de Kerkstraat 4 bij haar zus"
    for action in ("block", "unblock", "revoke", "replace"):
        response = await desk.referrer.post(f"{card}/{action}", json={"reason": typed})
        assert response.status_code == 422, action
        [error] = response.json()["errors"]
        assert error["field"] == "reason"
        assert error["reason"].startswith("must be one of: lost, stolen, damaged, found,")
        assert "no_longer_eligible" in error["reason"] and "other" in error["reason"]
        assert typed not in response.text  # a refusal never repeats what was typed
    # Codes only the system gives (the daily job, erasure) are not offered at the desk.
    system = await desk.referrer.post(f"{card}/revoke", json={"reason": "eligibility_ended"})
    assert system.status_code == 422 and "must be one of:" in system.text

    # A known code that does not fit the action names the ones that do.
    unfit = await desk.referrer.post(f"{card}/block", json={"reason": "damaged"})
    assert unfit.status_code == 422
    assert unfit.json()["errors"] == [
        {
            "field": "reason",
            "reason": "damaged is not a reason to block a card;"
            " use one of: lost, stolen, fraud_suspected, holder_request, other",
        }
    ]
    vague = await desk.referrer.post(f"{card}/revoke", json={"reason": "other"})
    assert vague.status_code == 422 and vague.json()["errors"][0]["field"] == "note"
    assert (await desk.referrer.get(card)).json()["status"] == "active"
    assert await desk.outbox(STATUS_TOPIC) == []


async def test_the_event_carries_the_code_and_the_note_stays_at_the_desk(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 7)
    card = f"/cards/{ids['card_id']}"
    note = "verhuisd naar de Kerkstraat 4 bij haar zus"
    revoked = await desk.referrer.post(
        f"{card}/revoke", json={"reason": "no_longer_eligible", "note": note}
    )
    assert revoked.status_code == 200, revoked.text
    [event] = await desk.outbox(STATUS_TOPIC)
    assert (event["status"], event["reason"]) == ("revoked", "no_longer_eligible")
    assert "note" not in event
    assert note.encode() not in await desk.all_outbox_bytes()
    kept = (await desk.referrer.get(card)).json()
    assert (kept["status_reason"], kept["status_note"]) == ("no_longer_eligible", note)
    trail = (await desk.admin.get("/audit", params={"subject_id": ids["card_id"]})).json()
    assert ("card.revoke", f"no_longer_eligible: {note}") in {
        (e["action"], e["reason"]) for e in trail
    }
    # An operator sees who did what and when, not what was written about the person.
    issued = await desk.admin.post("/api-tokens", json={"label": "ops", "role": "operator"})
    operator = desk.client(issued.json()["token"])
    seen = (await operator.get("/audit", params={"subject_id": ids["card_id"]})).json()
    assert ("card.revoke", None, True) in {
        (e["action"], e["reason"], e["reason_withheld"]) for e in seen
    }
    assert note not in json.dumps(seen)


async def test_the_desk_lists_the_reason_codes_with_dutch_labels(desk: Desk) -> None:
    codes = (await desk.referrer.get("/reason-codes")).json()
    assert {"code": "lost", "label": "verloren"} in codes["cards"]["block"]
    assert [c["code"] for c in codes["cards"]["unblock"]] == ["found", "other"]
    assert {"code": "key_compromised", "label": "sleutel uitgelekt"} in codes["devices"]["revoke"]
    offered = {c["code"] for action in codes["cards"].values() for c in action}
    assert not offered & {"eligibility_ended", "holder_erased"}


async def test_replacing_a_lost_card_keeps_the_holder(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 3)
    await desk.referrer.post(f"/cards/{ids['card_id']}/block", json={"reason": "stolen"})
    replaced = await desk.referrer.post(
        f"/cards/{ids['card_id']}/replace", json={"reason": "stolen"}
    )
    assert replaced.status_code == 201, replaced.text
    new = replaced.json()
    assert new["card_number"] != ids["card_number"]
    old_card = (await desk.referrer.get(f"/cards/{ids['card_id']}")).json()
    assert old_card["status"] == "replaced"
    new_card = (await desk.referrer.get(f"/cards/{new['card_id']}")).json()
    assert new_card["status"] == "active" and new_card["replaces_card_id"] == ids["card_id"]
    issued = await desk.outbox(ISSUED_TOPIC)
    assert [e["holder_id"] for e in issued] == [ids["person_id"]] * 2  # budget follows holder
    assert issued[1]["replaces_card_id"] == ids["card_id"]
    statuses = await desk.outbox(STATUS_TOPIC)
    assert [(e["status"], e["reason"]) for e in statuses] == [
        ("blocked", "stolen"),
        ("replaced", "stolen"),
    ]
    twice = await desk.referrer.post(f"/cards/{ids['card_id']}/replace", json={"reason": "lost"})
    assert twice.status_code == 409 and "cannot replace a card that is replaced" in twice.text


async def test_an_active_card_can_be_replaced_directly(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 4)
    replaced = await desk.referrer.post(
        f"/cards/{ids['card_id']}/replace", json={"reason": "damaged"}
    )
    assert replaced.status_code == 201


async def test_second_card_refused(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 5)
    second = await desk.referrer.post(f"/people/{ids['person_id']}/cards")
    assert second.status_code == 409
    assert second.json()["detail"] == (
        "card: this person already has an active card; block or replace it"
    )
    await desk.referrer.post(f"/cards/{ids['card_id']}/block", json={"reason": "lost"})
    while_blocked = await desk.referrer.post(f"/people/{ids['person_id']}/cards")
    assert while_blocked.status_code == 409 and "replace it instead" in while_blocked.text
    assert len(await desk.outbox(ISSUED_TOPIC)) == 1


async def test_no_card_without_a_current_grant(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 6, card=False)
    person = (await desk.referrer.post("/people", json=person_body(7))).json()["id"]
    none = await desk.referrer.post(f"/people/{person}/cards")
    assert none.status_code == 409 and "grant a target group" in none.text
    today = localtime.today()
    old = await new_holder(
        desk.referrer,
        8,
        card=False,
        eligible_from=(today - timedelta(days=400)).isoformat(),
        eligible_until=(today - timedelta(days=40)).isoformat(),
        grace_days=10,
    )
    ended = await desk.referrer.post(f"/people/{old['person_id']}/cards")
    assert ended.status_code == 409 and "extend it before issuing a card" in ended.text
    extended = await desk.referrer.post(
        f"/people/{old['person_id']}/eligibility/{old['eligibility_id']}/extension",
        json={"eligible_until": (today + timedelta(days=100)).isoformat(), "reason": "renewed"},
    )
    assert extended.status_code == 200, extended.text
    assert (await desk.referrer.post(f"/people/{old['person_id']}/cards")).status_code == 201
    assert (await desk.referrer.post(f"/people/{ids['person_id']}/cards")).status_code == 201


async def test_expiry_job_expires_and_announces(desk: Desk) -> None:
    today = localtime.today()
    ending = await new_holder(
        desk.referrer, 9, eligible_until=(today + timedelta(days=20)).isoformat(), grace_days=5
    )
    await new_holder(desk.referrer, 10)  # ends in a year: neither expired nor announced
    operator = desk.client(await desk.token("operator"))
    now = await operator.post("/jobs/expiry")
    assert now.json() == {"expired": 0, "announced": 1}
    assert (await operator.post("/jobs/expiry")).json() == {"expired": 0, "announced": 0}
    announced = await desk.outbox("cards.eligibility-ending-soon.v1")
    assert [a["holder_id"] for a in announced] == [ending["person_id"]]

    # The API replays past days only (expiry is final); the job as it will run in 26 days:
    later = today + timedelta(days=26)
    future = await operator.post("/jobs/expiry", params={"today": later.isoformat()})
    assert future.status_code == 422
    assert future.json()["errors"] == [
        {
            "field": "today",
            "reason": f"{later.isoformat()} lies in the future (today is {today.isoformat()});"
            " only a past day can be replayed",
        }
    ]
    assert (await desk.referrer.get(f"/cards/{ending['card_id']}")).json()["status"] == "active"
    past = await operator.post(
        "/jobs/expiry", params={"today": (today - timedelta(days=3)).isoformat()}
    )
    assert past.json() == {"expired": 0, "announced": 0}
    job_desk = unit.Desk(desk.settings, PersonalDataVault(desk.settings.master_key))
    run = await run_expiry(desk.pool, job_desk, later)
    assert run.expired == 1
    card = (await desk.referrer.get(f"/cards/{ending['card_id']}")).json()
    assert card["status"] == "expired"
    assert card["status_reason"] == "eligibility_ended"
    assert "eligibility ended on" in card["status_note"]
    block = await desk.referrer.post(f"/cards/{ending['card_id']}/block", json={"reason": "lost"})
    assert block.status_code == 409
    assert "cannot block a card that is expired" in block.json()["detail"]
    expired = [e for e in await desk.outbox(STATUS_TOPIC) if e["status"] == "expired"]
    assert [e["card_id"] for e in expired] == [ending["card_id"]]
    referrer_run = await desk.referrer.post("/jobs/expiry")
    assert referrer_run.status_code == 403


async def test_referrer_cannot_touch_another_organisations_people(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 11)
    other_org = await desk.organisation("Welzijnsraad", "welfare_council")
    other = desk.client(await desk.token("referrer", organisation_id=other_org))
    attempts = [
        other.get(f"/people/{ids['person_id']}"),
        other.post(f"/people/{ids['person_id']}/cards"),
        other.post(f"/cards/{ids['card_id']}/block", json={"reason": "lost"}),
        other.get(f"/people/{ids['person_id']}/export"),
        other.post(
            f"/people/{ids['person_id']}/eligibility",
            json={
                "target_group": "senior",
                "eligible_from": "2026-01-01",
                "eligible_until": "2026-12-31",
            },
        ),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 403
        assert (
            response.json()["detail"] == "person: this person is followed by another organisation"
        )
    sneaky = await other.post("/people", json=person_body(12, referrer_org_id=desk.org_id))
    assert sneaky.status_code == 403 and "its own organisation" in sneaky.text
    assert (await desk.referrer.get(f"/cards/{ids['card_id']}")).json()["status"] == "active"


async def test_roles_and_tokens(desk: Desk) -> None:
    anonymous = desk.client("")
    anonymous.headers.pop("Authorization")
    assert (await anonymous.post("/people", json=person_body(13))).status_code == 401
    assert (await desk.client("vtp_nonsense").get("/organisations")).status_code == 401
    finance = desk.client(await desk.token("finance"))
    refused = await finance.post("/people", json=person_body(13))
    assert refused.status_code == 403 and "role finance" in refused.text
    assert (await finance.get("/providers")).status_code == 200
    assert (
        await desk.referrer.post("/organisations", json={"name": "x", "kind": "ocmw"})
    ).status_code == 403

    issued = await desk.admin.post("/api-tokens", json={"label": "tmp", "role": "operator"})
    token = issued.json()
    operator = desk.client(token["token"])
    assert (await operator.get("/audit")).status_code == 200
    assert (await desk.admin.delete(f"/api-tokens/{token['token_id']}")).status_code == 204
    assert (await operator.get("/audit")).status_code == 401
    bad = await desk.admin.post("/api-tokens", json={"label": "r", "role": "referrer"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "organisation_id"
    async with desk.pool.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT count(*) FROM api_tokens WHERE token_hash = $1", token["token"]
        )
    assert stored == 0  # only the hash is kept


async def test_every_write_is_audited(desk: Desk) -> None:
    ids = await new_holder(desk.referrer, 14)
    await desk.referrer.post(
        f"/cards/{ids['card_id']}/block",
        json={"reason": "lost", "note": "lost at the pool"},
        headers={"X-Correlation-ID": "corr-abc"},
    )
    entries = (await desk.admin.get("/audit", params={"subject_id": ids["card_id"]})).json()
    actions = [(e["action"], e["actor_role"], e["reason"]) for e in entries]
    assert ("card.block", "referrer", "lost: lost at the pool") in actions
    assert any(a[0] == "card.issued" for a in actions)
    block = next(e for e in entries if e["action"] == "card.block")
    assert block["correlation_id"] == "corr-abc" and block["actor_org_id"] == desk.org_id
    async with desk.pool.acquire() as conn:
        by_action = {
            r["action"]: r["n"]
            for r in await conn.fetch("SELECT action, count(*) AS n FROM audit_log GROUP BY 1")
        }
    assert by_action["person.registered"] == 1
    assert by_action["eligibility.granted"] == 1
    assert by_action["organisation.registered"] == 1
    assert by_action["token.issued"] == 1


async def test_openapi_document_declares_bearer_tokens(desk: Desk) -> None:
    document = (await desk.admin.get("/openapi.json")).json()
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    assert "/cards/{card_id}/replace" in document["paths"]


async def test_only_a_live_card_is_printed(desk: Desk) -> None:
    """A replaced, revoked or blocked card printed again would be refused at every check-in
    while it reads "geldig tot …": the desk prints the card that works, and says which."""
    ids = await new_holder(desk.referrer, 24)
    old = ids["card_id"]
    blocked = await desk.referrer.post(f"/cards/{old}/block", json={"reason": "lost"})
    assert blocked.status_code == 200, blocked.text
    refused = await desk.referrer.get(f"/cards/{old}/card.pdf")
    assert refused.status_code == 409
    assert refused.json()["errors"] == [
        {
            "field": "status",
            "reason": "the card is blocked; only an active card is printed"
            " (unblock it, or replace it and print the new card)",
        }
    ]
    replaced = await desk.referrer.post(f"/cards/{old}/replace", json={"reason": "lost"})
    assert replaced.status_code == 201, replaced.text
    new = replaced.json()["card_id"]
    assert (await desk.referrer.get(f"/cards/{old}/card.pdf")).status_code == 409
    printed = await desk.referrer.get(f"/cards/{new}/card.pdf")
    assert printed.status_code == 200 and printed.content.startswith(b"%PDF")
    revoked = await desk.referrer.post(f"/cards/{new}/revoke", json={"reason": "issued_in_error"})
    assert revoked.status_code == 200, revoked.text
    gone = await desk.referrer.get(f"/cards/{new}/card.pdf")
    assert gone.status_code == 409 and "revoked" in gone.json()["detail"]
