"""One unit of work: a transaction in which state changes, their events (outbox) and the
audit line (who, what, when, why) are written together or not at all."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import asyncpg

from services.cards.domain.access import Principal
from services.cards.personal_data import PersonalDataVault
from services.cards.repository import audit
from services.cards.settings import CardsSettings
from shared import topics
from shared.db import DbConnection
from shared.envelope import new_envelope
from shared.events.base import EventPayload
from shared.outbox import enqueue_events

SOURCE = "/vrijetijdspas/cards"


@dataclass(frozen=True)
class Desk:
    """What every operation needs besides a transaction: settings and the key vault."""

    settings: CardsSettings
    vault: PersonalDataVault


@dataclass
class Unit:
    conn: DbConnection
    desk: Desk
    principal: Principal
    correlation_id: str | None
    default_reason: str | None = None
    audited: int = field(default=0, init=False)

    async def publish(self, *payloads: EventPayload) -> None:
        await enqueue_events(
            self.conn,
            [
                (
                    new_envelope(
                        type=topics.topic_for(p).event_type,
                        source=SOURCE,
                        correlation_id=self.correlation_id,
                    ),
                    p,
                )
                for p in payloads
            ],
        )

    async def audit(
        self, action: str, subject_type: str, subject_id: object, reason: str | None = None
    ) -> None:
        await audit.record(
            self.conn,
            self.principal,
            action=action,
            subject_type=subject_type,
            subject_id=str(subject_id),
            reason=reason or self.default_reason,
            correlation_id=self.correlation_id,
        )
        self.audited += 1


class UnauditedWrite(RuntimeError):
    """A write tried to commit without saying who did what: a bug, never committed."""


@asynccontextmanager
async def unit_of_work(
    pool: asyncpg.Pool,
    desk: Desk,
    principal: Principal,
    correlation_id: str | None,
    reason: str | None = None,
) -> AsyncIterator[Unit]:
    async with pool.acquire() as conn, conn.transaction():
        unit = Unit(conn, desk, principal, correlation_id, reason)
        yield unit
        if unit.audited == 0:
            raise UnauditedWrite("every write must record an audit line")


@asynccontextmanager
async def read_only(pool: asyncpg.Pool, desk: Desk, principal: Principal) -> AsyncIterator[Unit]:
    """A consistent read with the same access checks; nothing to audit, nothing to publish."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        yield Unit(conn, desk, principal, None)
