"""The outbox relay's record limit is the deployment's to set, next to its broker's."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.claims.settings import ClaimsSettings
from shared.kafka import MAX_RECORD_BYTES
from shared.runtime import ServiceRuntime

SECRETS = {"CLAIMS_DATABASE_URL": "postgresql://db/claims", "CLAIMS_API_TOKEN_SECRET": "t" * 32}


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> ClaimsSettings:
    for name, value in {**SECRETS, **env}.items():
        monkeypatch.setenv(name, value)
    return ClaimsSettings()


def test_the_limit_defaults_under_kafkas_and_reaches_the_relays_sender(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert _settings(monkeypatch).kafka_max_record_bytes == MAX_RECORD_BYTES < 1_048_588
    raised = _settings(monkeypatch, KAFKA_MAX_RECORD_BYTES="5000000")
    # (A service's logging goes to its stdout; the test's is not one to keep.)
    monkeypatch.setattr("shared.runtime.configure_logging", lambda *_a, **_k: None)
    runtime = ServiceRuntime.for_service("claims", raised, Path("."))
    assert runtime.max_record_bytes == 5_000_000


def test_a_limit_of_nothing_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="KAFKA_MAX_RECORD_BYTES"):
        _settings(monkeypatch, KAFKA_MAX_RECORD_BYTES="0")
