"""The cards service's HTTP API: organisations, providers, devices, people, eligibility, cards."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from fastapi import APIRouter, FastAPI, HTTPException, Request
from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator
from schwifty import IBAN
from stdnum.be import nn as national_number

from services.cards.card_numbers import new_card_number
from services.cards.personal_data import PersonalDataVault
from services.cards.settings import CardsSettings
from shared import topics
from shared.checkin_signature import public_key_b64
from shared.db import DbConnection
from shared.envelope import new_envelope
from shared.events import cards as ev
from shared.events.base import EventPayload
from shared.http import add_correlation_middleware, health_router
from shared.ids import uuid7
from shared.outbox import enqueue_events
from shared.sealing import seal

SOURCE = "/vrijetijdspas/cards"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewOrganisation(Strict):
    name: str = Field(min_length=1, max_length=200)
    kind: ev.OrganisationKind
    contact_email: EmailStr | None = None
    webhook_url: str | None = Field(default=None, max_length=500)
    sub_municipality: str | None = Field(default=None, max_length=100)


class NewProvider(Strict):
    name: str = Field(min_length=1, max_length=200)
    sub_municipality: str = Field(min_length=1, max_length=100)
    mode: ev.ProviderMode = ev.ProviderMode.REFUND
    partner: bool = True
    organisation_id: uuid.UUID | None = None
    contact_email: EmailStr | None = None


class NewPerson(Strict):
    first_name: str = Field(min_length=1, max_length=100)
    last_name: str = Field(min_length=1, max_length=100)
    date_of_birth: date
    national_number: str = Field(description="Belgian national register number (INSZ)")
    iban: str | None = None
    email: EmailStr | None = None
    address: str | None = Field(default=None, max_length=300)
    sub_municipality: str | None = Field(default=None, max_length=100)
    resident: bool = True
    channel: str = Field(default="email", pattern=r"^(email|letter|none)$")
    language: str = Field(default="nl", pattern=r"^(nl|en)$")
    referrer_org_id: uuid.UUID

    @field_validator("national_number")
    @classmethod
    def _valid_nn(cls, value: str) -> str:
        if not national_number.is_valid(value):
            raise ValueError("national_number is not a valid Belgian national register number")
        return str(national_number.compact(value))

    @field_validator("iban")
    @classmethod
    def _valid_iban(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(IBAN(value).compact)
        except ValueError as exc:
            raise ValueError(f"iban is not valid: {exc}") from exc


class NewEligibility(Strict):
    target_group: str = Field(pattern=r"^[a-z_]{2,50}$")
    eligible_from: date
    eligible_until: date
    grace_days: int = Field(default=30, ge=0, le=365)
    evidence_ref: str | None = Field(default=None, max_length=100)


class Created(BaseModel):
    id: uuid.UUID


def build_app(settings: CardsSettings, pool_ref: Any) -> FastAPI:
    vault = PersonalDataVault(settings.master_key)
    app = FastAPI(title="Vrijetijdspas — cards", version="1")
    add_correlation_middleware(app)
    app.include_router(health_router(lambda: pool_ref()))
    router = APIRouter()

    def pool() -> asyncpg.Pool:
        p: asyncpg.Pool = pool_ref()
        return p

    async def publish(conn: DbConnection, request: Request, *payloads: EventPayload) -> None:
        events = []
        for payload in payloads:
            topic = topics.topic_for(payload)
            events.append(
                (
                    new_envelope(
                        type=topic.event_type,
                        source=SOURCE,
                        correlation_id=request.state.correlation_id,
                    ),
                    payload,
                )
            )
        await enqueue_events(conn, events)

    @router.post("/organisations", status_code=201)
    async def create_organisation(body: NewOrganisation, request: Request) -> Created:
        org_id = uuid7()
        async with pool().acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO organisations (organisation_id, name, kind, contact_email, webhook_url,"
                " sub_municipality) VALUES ($1, $2, $3, $4, $5, $6)",
                org_id,
                body.name,
                body.kind.value,
                body.contact_email,
                body.webhook_url,
                body.sub_municipality,
            )
            await publish(
                conn,
                request,
                ev.OrganisationRegistered(
                    organisation_id=org_id,
                    name=body.name,
                    kind=body.kind,
                    contact_email=body.contact_email,
                    webhook_url=body.webhook_url,
                    sub_municipality=body.sub_municipality,
                ),
            )
        return Created(id=org_id)

    @router.post("/providers", status_code=201)
    async def create_provider(body: NewProvider, request: Request) -> Created:
        provider_id = uuid7()
        async with pool().acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO providers (provider_id, organisation_id, name, sub_municipality, mode,"
                " partner, contact_email) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                provider_id,
                body.organisation_id,
                body.name,
                body.sub_municipality,
                body.mode.value,
                body.partner,
                body.contact_email,
            )
            await publish(
                conn,
                request,
                ev.ProviderRegistered(
                    provider_id=provider_id,
                    organisation_id=body.organisation_id,
                    name=body.name,
                    sub_municipality=body.sub_municipality,
                    mode=body.mode,
                    partner=body.partner,
                    contact_email=body.contact_email,
                ),
            )
        return Created(id=provider_id)

    @router.post("/providers/{provider_id}/devices", status_code=201)
    async def register_device(provider_id: uuid.UUID, request: Request) -> dict[str, Any]:
        """Returns the device's private key once; only the public key is kept."""
        device_id = uuid7()
        private = Ed25519PrivateKey.generate()
        public = public_key_b64(private)
        async with pool().acquire() as conn, conn.transaction():
            if (
                await conn.fetchval("SELECT 1 FROM providers WHERE provider_id = $1", provider_id)
                is None
            ):
                raise HTTPException(404, f"provider {provider_id} does not exist")
            await conn.execute(
                "INSERT INTO devices (device_id, provider_id, public_key) VALUES ($1, $2, $3)",
                device_id,
                provider_id,
                public,
            )
            await publish(
                conn,
                request,
                ev.DeviceRegistered(
                    device_id=device_id,
                    provider_id=provider_id,
                    public_key=public,
                    key_id=1,
                    registered_at=datetime.now(UTC),
                ),
            )
        raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return {
            "device_id": str(device_id),
            "provider_id": str(provider_id),
            "public_key": public,
            "private_key": base64.b64encode(raw).decode(),
        }

    @router.post("/people", status_code=201)
    async def register_person(body: NewPerson, request: Request) -> Created:
        person_id = uuid7()
        data_key = vault.new_data_key()
        personal = {
            "first_name": body.first_name,
            "last_name": body.last_name,
            "date_of_birth": body.date_of_birth.isoformat(),
            "national_number": body.national_number,
            "iban": body.iban,
            "email": body.email,
            "address": body.address,
        }
        nn_hash = hmac.new(
            bytes.fromhex(settings.master_key), body.national_number.encode(), hashlib.sha256
        ).hexdigest()
        async with pool().acquire() as conn, conn.transaction():
            if (
                await conn.fetchval(
                    "SELECT 1 FROM organisations WHERE organisation_id = $1", body.referrer_org_id
                )
                is None
            ):
                raise HTTPException(
                    422, f"referrer_org_id {body.referrer_org_id} is not a known organisation"
                )
            try:
                await conn.execute(
                    "INSERT INTO people (person_id, referrer_org_id, data_key, sealed_data,"
                    " national_number_hash, sub_municipality, resident, channel, language)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    person_id,
                    body.referrer_org_id,
                    data_key,
                    vault.encrypt(data_key, personal),
                    nn_hash,
                    body.sub_municipality,
                    body.resident,
                    body.channel,
                    body.language,
                )
            except asyncpg.UniqueViolationError:
                raise HTTPException(
                    409, "a person with this national number is already registered"
                ) from None
            name = f"{body.first_name} {body.last_name}"
            await publish(
                conn,
                request,
                ev.HolderDetailsChanged(
                    holder_id=person_id,
                    referrer_org_id=body.referrer_org_id,
                    channel=body.channel,
                    language=body.language,
                    beneficiary_sealed=seal(
                        settings.finance_public_key, {"name": name, "iban": body.iban}
                    )
                    if body.iban
                    else None,
                    contact_sealed=seal(
                        settings.notifications_public_key,
                        {"name": name, "email": body.email, "address": body.address},
                    ),
                    changed_at=datetime.now(UTC),
                ),
            )
        return Created(id=person_id)

    @router.post("/people/{person_id}/eligibility", status_code=201)
    async def grant_eligibility(
        person_id: uuid.UUID, body: NewEligibility, request: Request
    ) -> Created:
        if body.eligible_until < body.eligible_from:
            raise HTTPException(422, "eligible_until must not be before eligible_from")
        eligibility_id = uuid7()
        async with pool().acquire() as conn, conn.transaction():
            referrer = await conn.fetchval(
                "SELECT referrer_org_id FROM people WHERE person_id = $1", person_id
            )
            if referrer is None:
                raise HTTPException(404, f"person {person_id} does not exist")
            await conn.execute(
                "INSERT INTO eligibilities (eligibility_id, person_id, target_group, eligible_from,"
                " eligible_until, grace_days, evidence_ref, granted_by)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                eligibility_id,
                person_id,
                body.target_group,
                body.eligible_from,
                body.eligible_until,
                body.grace_days,
                body.evidence_ref,
                referrer,
            )
            await publish(
                conn,
                request,
                ev.EligibilityChanged(
                    holder_id=person_id,
                    target_group=body.target_group,
                    eligible_from=body.eligible_from,
                    eligible_until=body.eligible_until,
                    grace_days=body.grace_days,
                    referrer_org_id=referrer,
                    changed_at=datetime.now(UTC),
                ),
            )
        return Created(id=eligibility_id)

    @router.post("/people/{person_id}/cards", status_code=201)
    async def issue_card(person_id: uuid.UUID, request: Request) -> dict[str, str]:
        card_id = uuid7()
        card_number = new_card_number(settings.card_number_prefix)
        async with pool().acquire() as conn, conn.transaction():
            person = await conn.fetchrow(
                "SELECT referrer_org_id, sub_municipality, resident FROM people"
                " WHERE person_id = $1 AND erased_at IS NULL",
                person_id,
            )
            if person is None:
                raise HTTPException(404, f"person {person_id} does not exist")
            eligibility = await conn.fetchrow(
                "SELECT target_group, eligible_from, eligible_until, grace_days FROM eligibilities"
                " WHERE person_id = $1 ORDER BY eligible_until DESC LIMIT 1",
                person_id,
            )
            if eligibility is None:
                raise HTTPException(
                    409, "grant an eligibility (target group and dates) before issuing a card"
                )
            try:
                await conn.execute(
                    "INSERT INTO cards (card_id, card_number, person_id, status) VALUES ($1, $2, $3, 'active')",
                    card_id,
                    card_number,
                    person_id,
                )
            except asyncpg.UniqueViolationError:
                raise HTTPException(
                    409, "this person already has an active card; block or replace it first"
                ) from None
            await publish(
                conn,
                request,
                ev.CardIssued(
                    card_id=card_id,
                    card_number=card_number,
                    holder_id=person_id,
                    target_group=eligibility["target_group"],
                    eligible_from=eligibility["eligible_from"],
                    eligible_until=eligibility["eligible_until"],
                    grace_days=eligibility["grace_days"],
                    referrer_org_id=person["referrer_org_id"],
                    resident=person["resident"],
                    sub_municipality=person["sub_municipality"],
                    issued_at=datetime.now(UTC),
                ),
            )
        return {"card_id": str(card_id), "card_number": card_number}

    app.include_router(router)
    return app
