"""The demo seeder registers people with random national numbers; one that is taken is
drawn again (with a birth date to match), other refusals still stop the seeding."""

from __future__ import annotations

import json
import random

import httpx
import pytest
from stdnum.be import nn

from vtp.demo.municipality import identity_of
from vtp.demo.seed import _register


def _client(answers: list[int], seen: list[dict[str, str]]) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        status = answers.pop(0)
        if status == 409:
            return httpx.Response(409, json={"detail": "national_number: already registered"})
        if status >= 400:
            return httpx.Response(status, json={"detail": "date_of_birth: in the future"})
        return httpx.Response(201, json={"id": "p-1"})

    return httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://cards")


async def test_a_taken_national_number_is_drawn_again() -> None:
    seen: list[dict[str, str]] = []
    identity = random.Random(1)
    data = {"first_name": "An", **identity_of(identity)}
    async with _client([409, 201], seen) as client:
        assert await _register(client, data, identity) == {"id": "p-1"}
    first, second = seen
    assert first["national_number"] != second["national_number"]
    assert nn.is_valid(second["national_number"])
    born = nn.get_birth_date(second["national_number"])
    assert born is not None
    assert born.isoformat() == second["date_of_birth"]
    assert second["first_name"] == "An"


async def test_other_refusals_stop_the_seeding() -> None:
    seen: list[dict[str, str]] = []
    identity = random.Random(2)
    async with _client([422], seen) as client:
        with pytest.raises(RuntimeError, match="422"):
            await _register(client, identity_of(identity), identity)
    assert len(seen) == 1
