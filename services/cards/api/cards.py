from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response

from services.cards.api.deps import Caller, reading, writing
from services.cards.api.idempotency import Idempotent
from services.cards.card_numbers import qr_payload
from services.cards.card_print import card_pdf
from services.cards.desk import cards as desk
from services.cards.desk.people import load_person
from services.cards.desk.unit import Unit
from services.cards.domain.errors import NotFound
from services.cards.domain.lifecycle import CardAction, check_printable
from services.cards.domain.reasons import CARD_REASONS, reason_codes
from services.cards.repository import cards, eligibilities
from services.cards.schemas import CardStatusChange
from shared import localtime
from shared.events.cards import CardStatus

router = APIRouter(tags=["cards"])


@router.post("/people/{person_id}/cards", status_code=201)
async def issue_card(person_id: uuid.UUID, once: Idempotent) -> dict[str, str]:
    async with once.writing() as unit:
        card = await desk.issue_card(unit, person_id, localtime.today())
        return await once.answer(
            unit, {"card_id": str(card.card_id), "card_number": card.card_number}
        )


async def _readable_card(unit: Unit, card_id: uuid.UUID) -> Any:
    card = await cards.get(unit.conn, card_id)
    if card is None:
        raise NotFound(f"card: {card_id} does not exist")
    await load_person(unit, card["person_id"], for_update=False)
    return card


@router.get("/cards/{card_id}")
async def get_card(card_id: uuid.UUID, principal: Caller, request: Request) -> dict[str, Any]:
    async with reading(request, principal) as unit:
        card = await _readable_card(unit, card_id)
        usage = await cards.usage(unit.conn, card_id)
    return {
        **dict(card),
        "qr_payload": qr_payload(card["card_number"]),
        "usage": dict(usage) if usage else {"checkins": 0, "approved": 0, "refunded_cents": 0},
    }


async def _change(
    card_id: uuid.UUID,
    action: CardAction,
    body: CardStatusChange,
    principal: Caller,
    request: Request,
) -> dict[str, str]:
    # The unit's reason is the note, else the X-Audit-Reason header: it stays at the desk.
    async with writing(request, principal, body.note) as unit:
        status = await desk.change_status(unit, card_id, action, body.reason, unit.default_reason)
    return {"card_id": str(card_id), "status": status.value}


def _described(action: CardAction, text: str) -> str:
    return f"{text} Reasons: {', '.join(CARD_REASONS[action])}."


@router.get("/reason-codes")
async def list_reason_codes(principal: Caller) -> dict[str, dict[str, list[dict[str, str]]]]:
    """The reason codes each card and device action takes, with their Dutch labels: what a
    form offers to pick from."""
    return reason_codes()


@router.post(
    "/cards/{card_id}/block",
    description=_described(
        CardAction.BLOCK, "Lost or stolen: check-ins with this card are refused from now on."
    ),
)
async def block(
    card_id: uuid.UUID, body: CardStatusChange, principal: Caller, request: Request
) -> dict[str, str]:
    return await _change(card_id, CardAction.BLOCK, body, principal, request)


@router.post(
    "/cards/{card_id}/unblock",
    description=_described(CardAction.UNBLOCK, "Found again before it was replaced."),
)
async def unblock(
    card_id: uuid.UUID, body: CardStatusChange, principal: Caller, request: Request
) -> dict[str, str]:
    return await _change(card_id, CardAction.UNBLOCK, body, principal, request)


@router.post(
    "/cards/{card_id}/revoke",
    description=_described(CardAction.REVOKE, "The card ends for good."),
)
async def revoke(
    card_id: uuid.UUID, body: CardStatusChange, principal: Caller, request: Request
) -> dict[str, str]:
    return await _change(card_id, CardAction.REVOKE, body, principal, request)


@router.post(
    "/cards/{card_id}/replace",
    status_code=201,
    description=_described(
        CardAction.REPLACE,
        "A new card for the same holder: budget and history stay with the holder.",
    ),
)
async def replace(card_id: uuid.UUID, body: CardStatusChange, once: Idempotent) -> dict[str, str]:
    async with once.writing(body.note) as unit:
        card = await desk.replace_card(
            unit, card_id, body.reason, unit.default_reason, localtime.today()
        )
        return await once.answer(
            unit,
            {
                "card_id": str(card.card_id),
                "card_number": card.card_number,
                "replaces_card_id": str(card_id),
            },
        )


@router.get("/cards/{card_id}/qr")
async def qr(card_id: uuid.UUID, principal: Caller, request: Request) -> dict[str, str]:
    async with reading(request, principal) as unit:
        card = await _readable_card(unit, card_id)
    return {"card_number": card["card_number"], "qr_payload": qr_payload(card["card_number"])}


@router.get("/cards/{card_id}/card.pdf", response_class=Response)
async def printable(card_id: uuid.UUID, principal: Caller, request: Request) -> Response:
    async with reading(request, principal) as unit:
        card = await _readable_card(unit, card_id)
        check_printable(CardStatus(card["status"]))
        grant = await eligibilities.current(unit.conn, card["person_id"])
    pdf = card_pdf(card["card_number"], grant["eligible_until"] if grant else None)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="kaart-{card["card_number"]}.pdf"'},
    )
