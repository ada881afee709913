"""docs/device-protocol.md shows the exact bytes of a worked example; they must be true."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.claims.authentication import KnownDevice, authenticate, authenticate_cancellation
from services.notifications.messages import REVERSAL_REASONS
from shared.checkin_signature import canonical_cancellation, canonical_checkin, verify
from shared.events.checkins import CancellationReason, CheckInCancelled, CheckInRecorded
from vtp.device.example import DEVICE_ID, PROVIDER_ID, worked_example

DOC = Path(__file__).parents[3] / "docs" / "device-protocol.md"
_BLOCK = re.compile(r"<!-- worked-example:([a-z0-9-]+) -->\n```\n(.*?)\n```", re.S)


@pytest.fixture(scope="module")
def blocks() -> dict[str, str]:
    return dict(_BLOCK.findall(DOC.read_text()))


def test_the_document_shows_every_value_of_the_example(blocks: dict[str, str]) -> None:
    assert set(blocks) == {
        "seed-hex",
        "private-key",
        "public-key",
        "canonical",
        "canonical-sha256",
        "signature",
        "body",
        "cancel-canonical",
        "cancel-signature",
        "cancel-body",
    }


def test_the_documented_values_are_what_the_code_computes(blocks: dict[str, str]) -> None:
    example = worked_example()
    assert blocks["seed-hex"] == example.seed_hex
    assert blocks["private-key"] == example.private_key_b64
    assert blocks["public-key"] == example.public_key_b64
    assert blocks["canonical"].encode() == example.canonical
    assert blocks["canonical-sha256"] == hashlib.sha256(example.canonical).hexdigest()
    assert blocks["signature"] == example.signature_b64
    assert blocks["body"].encode() == example.body
    assert f"Canonical bytes ({len(example.canonical)} bytes" in DOC.read_text()
    assert blocks["cancel-canonical"].encode() == example.cancel_canonical
    assert blocks["cancel-signature"] == example.cancel_signature_b64
    assert blocks["cancel-body"].encode() == example.cancel_body
    assert f"canonical bytes ({len(example.cancel_canonical)} bytes" in DOC.read_text()


def test_the_documented_message_is_accepted_by_the_claims_authentication(
    blocks: dict[str, str],
) -> None:
    checkin = CheckInRecorded.model_validate_json(blocks["body"])
    assert canonical_checkin(checkin) == blocks["canonical"].encode()
    assert verify(blocks["public-key"], blocks["canonical"].encode(), blocks["signature"])
    device = KnownDevice(DEVICE_ID, PROVIDER_ID, blocks["public-key"], revoked_at=None)
    assert authenticate(checkin, device, nonce_already_used=False) is None


def test_the_documented_cancellation_is_accepted_by_the_claims_authentication(
    blocks: dict[str, str],
) -> None:
    cancellation = CheckInCancelled.model_validate_json(blocks["cancel-body"])
    assert canonical_cancellation(cancellation) == blocks["cancel-canonical"].encode()
    assert blocks["cancel-canonical"].startswith("vtp-cancel-v1\n")
    device = KnownDevice(DEVICE_ID, PROVIDER_ID, blocks["public-key"], revoked_at=None)
    arrived = datetime(2026, 5, 2, 9, 15, 1, tzinfo=UTC)
    assert authenticate_cancellation(cancellation, device, [], arrived) is None


def test_a_checkin_signature_never_passes_as_a_cancellations_nor_the_other_way(
    blocks: dict[str, str],
) -> None:
    """Distinct first lines: each signature verifies only over its own kind of bytes."""
    key = blocks["public-key"]
    assert not verify(key, blocks["cancel-canonical"].encode(), blocks["signature"])
    assert not verify(key, blocks["canonical"].encode(), blocks["cancel-signature"])
    # The cancellation's values signed under the check-in's domain do not verify either.
    relabelled = blocks["cancel-canonical"].replace("vtp-cancel-v1", "vtp-checkin-v1", 1)
    assert not verify(key, relabelled.encode(), blocks["cancel-signature"])


def test_a_changed_byte_of_the_documented_message_breaks_the_signature(
    blocks: dict[str, str],
) -> None:
    tampered = blocks["canonical"].replace("\n1250\n", "\n1251\n").encode()
    assert not verify(blocks["public-key"], tampered, blocks["signature"])


_REASON_ROW = re.compile(r"^\| `([a-z_]+)` \| [^|]+ \| ([^|]+) \|$", re.M)


def test_the_cancellation_reasons_are_the_codes_and_the_words_the_holder_reads() -> None:
    """Section 9 lists every cancellation code, and what the card holder then reads."""
    section = DOC.read_text().split("## 9. Cancelling a check-in")[1].split("\n## ")[0]
    rows = {code: words.strip() for code, words in _REASON_ROW.findall(section)}
    assert rows.pop("reason") == "the card holder reads (nl)"  # the table's header
    assert set(rows) == {r.value for r in CancellationReason}
    assert rows == {code: REVERSAL_REASONS["nl"][code] for code in rows}
