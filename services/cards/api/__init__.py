"""The cards service's HTTP API: one router per resource, all behind bearer tokens."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import asyncpg
from fastapi import FastAPI

from services.cards.api import cards, operations, organisations, people, providers, tokens
from services.cards.api.errors import install_error_handlers
from services.cards.api.idempotency import install_replay_handler
from services.cards.desk.unit import Desk
from services.cards.personal_data import PersonalDataVault
from services.cards.settings import CardsSettings
from shared.consumer import Stall
from shared.http import add_correlation_middleware, health_router


def build_app(
    settings: CardsSettings,
    pool_ref: Callable[[], asyncpg.Pool],
    stalls: Callable[[], Sequence[Stall]] | None = None,
) -> FastAPI:
    app = FastAPI(
        title="Vrijetijdspas — cards",
        version="1",
        description="The issuance desk: people, eligibility, cards, providers and devices."
        " Every call needs `Authorization: Bearer <token>`; every write is audited.",
    )
    app.state.desk = Desk(settings, PersonalDataVault(settings.master_key))
    app.state.pool_ref = pool_ref
    add_correlation_middleware(app)
    install_error_handlers(app)
    install_replay_handler(app)
    app.include_router(health_router(pool_ref, stalls=stalls))
    for module in (tokens, organisations, providers, people, cards, operations):
        app.include_router(module.router)
    return app
