from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request

from services.cards.api.deps import Caller, reading, writing
from services.cards.api.idempotency import Idempotent
from services.cards.desk import providers as desk
from services.cards.domain.access import Role, require_role
from services.cards.repository import devices, providers
from services.cards.schemas import DeviceRevocation, NewActivity, ProviderDetails, WithReason

router = APIRouter(tags=["providers and devices"])


@router.post("/providers", status_code=201)
async def create_provider(body: ProviderDetails, once: Idempotent) -> dict[str, str]:
    async with once.writing() as unit:
        provider_id = await desk.register_provider(unit, body)
        return await once.answer(unit, {"id": str(provider_id)})


@router.put("/providers/{provider_id}")
async def change_provider(
    provider_id: uuid.UUID, body: ProviderDetails, principal: Caller, request: Request
) -> dict[str, str]:
    async with writing(request, principal) as unit:
        await desk.change_provider(unit, provider_id, body)
    return {"id": str(provider_id)}


@router.get("/providers")
async def list_providers(principal: Caller, request: Request) -> list[dict[str, Any]]:
    require_role(principal, Role.PROGRAM_ADMIN, Role.FINANCE, Role.OPERATOR, Role.PROVIDER_ADMIN)
    async with reading(request, principal) as unit:
        rows = [dict(r) for r in await providers.all_(unit.conn)]
    if principal.role is Role.PROVIDER_ADMIN:
        rows = [r for r in rows if r["provider_id"] == principal.provider_id]
    return rows


@router.put("/providers/{provider_id}/activities", status_code=200)
async def put_activity(
    provider_id: uuid.UUID, body: NewActivity, principal: Caller, request: Request
) -> dict[str, str]:
    async with writing(request, principal) as unit:
        await desk.put_activity(unit, provider_id, body)
    return {"activity_id": body.activity_id}


@router.get("/providers/{provider_id}/activities")
async def list_activities(
    provider_id: uuid.UUID, principal: Caller, request: Request
) -> list[dict[str, Any]]:
    async with reading(request, principal) as unit:
        await desk.load_provider(unit, provider_id, for_update=False)
        return [dict(r) for r in await providers.activities(unit.conn, provider_id)]


@router.post("/providers/{provider_id}/devices", status_code=201)
async def register_device(provider_id: uuid.UUID, once: Idempotent) -> dict[str, Any]:
    """The device's private key is in this response and, for a retry with the same
    Idempotency-Key, encrypted under that key for 24 hours: store it on the device."""
    async with once.writing() as unit:
        credentials = await desk.register_device(unit, provider_id)
        return await once.answer(unit, credentials.as_json())


@router.get("/providers/{provider_id}/devices")
async def list_devices(
    provider_id: uuid.UUID, principal: Caller, request: Request
) -> list[dict[str, Any]]:
    async with reading(request, principal) as unit:
        await desk.load_provider(unit, provider_id, for_update=False)
        return [dict(r) for r in await devices.of_provider(unit.conn, provider_id)]


@router.post("/devices/{device_id}/rotate")
async def rotate_device(device_id: uuid.UUID, body: WithReason, once: Idempotent) -> dict[str, Any]:
    """A new key pair (key_id + 1). Claims still accepts the old key for check-ins that
    reached the broker before the rotation. With an Idempotency-Key, a retry after a lost
    answer gets the same new key instead of rotating again."""
    async with once.writing(body.reason) as unit:
        credentials = await desk.rotate_device_key(unit, device_id, body.reason)
        return await once.answer(unit, credentials.as_json())


@router.post("/devices/{device_id}/revoke")
async def revoke_device(
    device_id: uuid.UUID, body: DeviceRevocation, principal: Caller, request: Request
) -> dict[str, str]:
    """Its check-ins are refused from now on. The reason code travels in the event; the
    note (else the X-Audit-Reason header) stays at the desk."""
    async with writing(request, principal, body.note) as unit:
        await desk.revoke_device(unit, device_id, body.reason, unit.default_reason)
    return {"device_id": str(device_id), "status": "revoked"}
