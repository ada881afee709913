"""The cards API fixture, for the device client's tests against it."""

from __future__ import annotations

from tests.integration.cards.conftest import desk

__all__ = ["desk"]
