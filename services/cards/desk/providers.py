"""Providers (with their sealed bank account), their activities, and their check-in devices
with Ed25519 keys: the private key is returned once and never stored."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from services.cards.desk.unit import Unit
from services.cards.domain.access import Role, check_provider_access, require_role
from services.cards.domain.errors import Conflict, Forbidden, InvalidField, NotFound
from services.cards.domain.reasons import audit_reason, check_device_reason
from services.cards.domain.validation import parse_iban
from services.cards.repository import devices, organisations, providers
from services.cards.schemas import NewActivity, ProviderDetails
from shared.checkin_signature import public_key_b64
from shared.events import cards as ev
from shared.ids import uuid7
from shared.sealing import seal


def _sealed_account(unit: Unit, body: ProviderDetails) -> str | None:
    """The bank account for till-discount reimbursements, sealed for finance, which pays it
    without a creditor register of its own. Only this sealed value is stored or published:
    the cards service cannot read it back, so a later rename keeps the account holder's
    name as it was given with the IBAN (the bank's holder does not change with a rename)."""
    if body.iban is None:
        return None
    iban = parse_iban(body.iban)
    return seal(
        unit.desk.settings.finance_public_key,
        {"name": body.account_holder or body.name, "iban": iban},
    )


def _registered(
    provider_id: uuid.UUID, body: ProviderDetails, sealed: str | None
) -> ev.ProviderRegistered:
    """The event carries the provider as stored: `body` has the stored values filled in."""
    return ev.ProviderRegistered(
        provider_id=provider_id,
        organisation_id=body.organisation_id,
        name=body.name,
        sub_municipality=body.sub_municipality,
        mode=body.mode,
        partner=body.partner,
        contact_email=body.contact_email,
        beneficiary_sealed=sealed,
    )


async def _check_organisation(unit: Unit, organisation_id: uuid.UUID | None) -> None:
    if organisation_id is not None and not await organisations.exists(unit.conn, organisation_id):
        raise InvalidField("organisation_id", "is not a known organisation")


async def register_provider(unit: Unit, body: ProviderDetails) -> uuid.UUID:
    require_role(unit.principal, Role.PROGRAM_ADMIN)
    await _check_organisation(unit, body.organisation_id)
    provider_id = uuid7()
    sealed = _sealed_account(unit, body)
    await providers.insert(unit.conn, provider_id, _stored(body, sealed))
    await unit.publish(_registered(provider_id, body, sealed))
    await unit.audit("provider.registered", "provider", provider_id)
    return provider_id


def _stored(body: ProviderDetails, sealed: str | None) -> providers.ProviderFields:
    return providers.ProviderFields(
        organisation_id=body.organisation_id,
        name=body.name,
        sub_municipality=body.sub_municipality,
        mode=body.mode.value,
        partner=body.partner,
        contact_email=body.contact_email,
        beneficiary_sealed=sealed,
    )


async def load_provider(
    unit: Unit, provider_id: uuid.UUID, *, for_update: bool = True
) -> asyncpg.Record:
    check_provider_access(unit.principal, provider_id)
    row = await providers.get(unit.conn, provider_id, for_update=for_update)
    if row is None:
        raise NotFound(f"provider: {provider_id} does not exist")
    return row


def _with_stored(body: ProviderDetails, current: asyncpg.Record) -> ProviderDetails:
    """The change as a whole provider: what the request omits keeps its stored value."""
    given = body.model_fields_set
    kept: dict[str, object] = {
        "mode": body.mode if "mode" in given else ev.ProviderMode(current["mode"]),
        "partner": body.partner if "partner" in given else current["partner"],
        "organisation_id": (
            body.organisation_id if "organisation_id" in given else current["organisation_id"]
        ),
    }
    return body.model_copy(update=kept)


async def change_provider(unit: Unit, provider_id: uuid.UUID, body: ProviderDetails) -> None:
    current = await load_provider(unit, provider_id)
    body = _with_stored(body, current)
    new_account = body.iban is not None
    # Partnership, refund mode and the bank account decide who gets paid and where, the
    # organisation where the provider's notices go: the program decides those (a provider
    # token alone cannot redirect the money or the notices).
    reserved = [
        name
        for name, changed in (
            ("mode", body.mode.value != current["mode"]),
            ("partner", body.partner != current["partner"]),
            ("organisation_id", body.organisation_id != current["organisation_id"]),
            ("iban", new_account),
        )
        if changed
    ]
    if reserved and unit.principal.role is not Role.PROGRAM_ADMIN:
        raise Forbidden(
            f"{', '.join(reserved)}: role {unit.principal.role.value} may not change"
            f" {'this' if len(reserved) == 1 else 'these'} (allowed: program_admin);"
            " leave it out or send the current value"
        )
    if body.organisation_id != current["organisation_id"]:
        await _check_organisation(unit, body.organisation_id)
    sealed = _sealed_account(unit, body) if new_account else current["beneficiary_sealed"]
    await providers.update(unit.conn, provider_id, _stored(body, sealed))
    await unit.publish(_registered(provider_id, body, sealed))
    await unit.audit("provider.changed", "provider", provider_id)
    if new_account:
        await unit.audit("provider.bank_account_changed", "provider", provider_id)


async def put_activity(unit: Unit, provider_id: uuid.UUID, body: NewActivity) -> None:
    await load_provider(unit, provider_id)
    await providers.upsert_activity(
        unit.conn,
        provider_id,
        body.activity_id,
        body.name,
        body.category.value,
        body.price_cents,
        body.active,
    )
    await unit.audit("activity.saved", "provider", provider_id, f"activity {body.activity_id}")


@dataclass(frozen=True)
class DeviceCredentials:
    device_id: uuid.UUID
    provider_id: uuid.UUID
    key_id: int
    public_key: str
    private_key: str  # base64 of the raw 32 bytes; shown once

    def as_json(self) -> dict[str, str | int]:
        return {
            "device_id": str(self.device_id),
            "provider_id": str(self.provider_id),
            "key_id": self.key_id,
            "public_key": self.public_key,
            "private_key": self.private_key,
        }


def _new_key() -> tuple[str, str]:
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return public_key_b64(private), base64.b64encode(raw).decode()


async def register_device(unit: Unit, provider_id: uuid.UUID) -> DeviceCredentials:
    await load_provider(unit, provider_id)
    device_id = uuid7()
    public, private = _new_key()
    await devices.insert(unit.conn, device_id, provider_id, public)
    await unit.publish(
        ev.DeviceRegistered(
            device_id=device_id,
            provider_id=provider_id,
            public_key=public,
            key_id=1,
            registered_at=datetime.now(UTC),
        )
    )
    await unit.audit("device.registered", "device", device_id)
    return DeviceCredentials(device_id, provider_id, 1, public, private)


async def _live_device(unit: Unit, device_id: uuid.UUID) -> asyncpg.Record:
    device = await devices.get(unit.conn, device_id)
    if device is None:
        raise NotFound(f"device: {device_id} does not exist")
    check_provider_access(unit.principal, device["provider_id"])
    if device["revoked_at"] is not None:
        raise Conflict("device: it was revoked; register a new device instead")
    return device


async def rotate_device_key(unit: Unit, device_id: uuid.UUID, reason: str) -> DeviceCredentials:
    device = await _live_device(unit, device_id)
    public, private = _new_key()
    key_id = await devices.rotate(unit.conn, device_id, public)
    await unit.publish(
        ev.DeviceRegistered(
            device_id=device_id,
            provider_id=device["provider_id"],
            public_key=public,
            key_id=key_id,
            registered_at=datetime.now(UTC),
        )
    )
    await unit.audit("device.rotated", "device", device_id, reason)
    return DeviceCredentials(device_id, device["provider_id"], key_id, public, private)


async def revoke_device(
    unit: Unit, device_id: uuid.UUID, reason: ev.DeviceRevocationReason, note: str | None = None
) -> None:
    """The event carries the reason's code only; the typed note stays at the desk."""
    check_device_reason(reason, note)
    device = await _live_device(unit, device_id)
    await devices.revoke(unit.conn, device_id, reason.value, note)
    await unit.publish(
        ev.DeviceRevoked(
            device_id=device_id,
            provider_id=device["provider_id"],
            revoked_at=datetime.now(UTC),
            reason=reason,
        )
    )
    await unit.audit("device.revoked", "device", device_id, audit_reason(reason, note))
