from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.kafka import ensure_topics
from tests.support.components import Infra, real_infra


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    with real_infra(Path(tmp_path_factory.mktemp("infra"))) as running:
        yield running


@pytest.fixture(scope="session")
async def topics_ready(infra: Infra) -> None:
    await ensure_topics(infra.bootstrap_servers)


@pytest.fixture
async def database(infra: Infra) -> AsyncIterator[str]:
    """A fresh, empty database for one test; its DSN."""
    yield await infra.new_database()
