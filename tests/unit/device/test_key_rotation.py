"""Key rotation on the device: the check-ins not yet sent are re-signed with the new key
(the same check-ins, new messages), in place and in order, and a device stopped at any
point of the rotation ends with the new key and every pending check-in signed with it."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import topics
from shared.checkin_signature import canonical_checkin, public_key_b64, verify
from shared.envelope import parse_headers
from shared.events.checkins import Activity, ActivityCategory, CheckInRecorded
from shared.outbox import OutgoingRecord, record_for
from tests.support.device_broker import FakeBroker
from vtp.device import rotation
from vtp.device.client import DeviceClient
from vtp.device.devicefile import DeviceFile
from vtp.device.journal import Journal, NewKey, Rotation
from vtp.device.rotation import (
    MaybeRotated,
    NotRotated,
    ask_for_new_key,
    finish_rotation,
    install_new_key,
    new_key_from_answer,
    resign_checkin,
    resigning,
)
from vtp.device.signer import DeviceIdentity

ROOT = Path(__file__).parents[3]
ACTIVITY = Activity(id="zwembad", category=ActivityCategory.SPORT, name="Zwembad")
CARDS = ["6299001234568", "6299000000002"]
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _seed_b64(key: Ed25519PrivateKey) -> str:
    return base64.b64encode(
        key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    ).decode()


def _device_file(key_id: int | None = 1) -> DeviceFile:
    key = Ed25519PrivateKey.generate()
    return DeviceFile(
        uuid.uuid4(), uuid.uuid4(), _seed_b64(key), public_key_b64(key), key_id=key_id
    )


def _new_key(key_id: int = 2) -> NewKey:
    key = Ed25519PrivateKey.generate()
    return NewKey(key_id, public_key_b64(key), _seed_b64(key))


def _checkin(record: OutgoingRecord) -> CheckInRecorded:
    return CheckInRecorded.model_validate_json(record.payload)


def _verifies(record: OutgoingRecord, public_key: str) -> bool:
    checkin = _checkin(record)
    return verify(public_key, canonical_checkin(checkin), checkin.signature)


async def _journal_with(
    path: Path, file: DeviceFile, *, acknowledged: int, pending: int
) -> Journal:
    """A journal whose first `acknowledged` check-ins the broker took, and `pending` more
    it did not."""
    broker = FakeBroker()
    client = DeviceClient(file.identity(), Journal(path), broker)
    for index in range(acknowledged + pending):
        if index == acknowledged:
            broker.up = False
        client.scan(card=CARDS[index % 2], activity=ACTIVITY, price_cents=100 + index)
        await client.flush()
    assert client.journal.count() == pending
    return client.journal


def _rows(journal: Journal) -> list[tuple[object, ...]]:
    return journal._db.execute("SELECT * FROM pending ORDER BY seq").fetchall()


# --- the re-signed check-in (no I/O) -------------------------------------------------------

seeds = st.binary(min_size=32, max_size=32)
checkins = st.fixed_dictionaries(
    {
        "checkin_id": st.uuids(),
        "card_number": st.from_regex(r"\A[0-9]{13}\Z"),
        "activity": st.builds(
            Activity,
            id=st.from_regex(r"\A[A-Za-z0-9._:-]{1,64}\Z"),
            category=st.sampled_from(ActivityCategory),
            name=st.text(min_size=1, max_size=120),
        ),
        "price_cents": st.integers(0, 10_000_000),
        "occurred_at": st.datetimes(
            min_value=datetime(1900, 1, 2), max_value=datetime(8999, 12, 30), timezones=st.just(UTC)
        ),
        "counter": st.integers(0, 2**53),
        "nonce": st.from_regex(r"\A[0-9a-f]{32}\Z"),
    }
)


@FAST
@given(old_seed=seeds, new_seed=seeds, fields=checkins)
def test_a_re_signed_check_in_is_the_same_check_in_signed_by_the_new_key_only(
    old_seed: bytes, new_seed: bytes, fields: dict[str, object]
) -> None:
    old = DeviceIdentity(uuid.uuid4(), uuid.uuid4(), Ed25519PrivateKey.from_private_bytes(old_seed))
    new = replace(old, private_key=Ed25519PrivateKey.from_private_bytes(new_seed))
    envelope, original = old.check_in(**fields)  # type: ignore[arg-type]
    stored = record_for(envelope, original)

    resigned = resign_checkin(stored, new)

    again = _checkin(resigned)
    assert _verifies(resigned, public_key_b64(new.private_key))
    if new_seed != old_seed:
        assert not _verifies(resigned, public_key_b64(old.private_key))
    assert again.model_dump(exclude={"signature"}) == original.model_dump(exclude={"signature"})
    wire, before = json.loads(resigned.payload), json.loads(stored.payload)
    assert wire.pop("signature") == again.signature
    before.pop("signature")
    assert wire == before  # every other byte of the body as it was
    assert (resigned.topic, resigned.key) == (stored.topic, stored.key)
    # A new message (its body changed): a fresh ce_id, the rest of the envelope kept.
    headers, old_headers = parse_headers(resigned.headers), parse_headers(stored.headers)
    assert resigned.event_id == str(headers.id) != stored.event_id
    assert (headers.type, headers.source, headers.subject, headers.correlation_id) == (
        old_headers.type,
        old_headers.source,
        str(original.checkin_id),
        old_headers.correlation_id,
    )


def test_only_a_check_in_of_this_device_is_re_signed() -> None:
    identity = _device_file().identity()
    envelope, beat = identity.heartbeat(buffered=0)
    with pytest.raises(ValueError, match="not a check-in"):
        resign_checkin(record_for(envelope, beat), identity)
    other = _device_file().identity()
    envelope, checkin = other.check_in(card_number=CARDS[0], activity=ACTIVITY, price_cents=1)
    with pytest.raises(ValueError, match="another device"):
        resign_checkin(record_for(envelope, checkin), identity)
    # In the journal both are left as they are.
    assert resigning(identity)(record_for(*identity.heartbeat(buffered=0))) is None
    assert resigning(identity)(record_for(envelope, checkin)) is None


def test_the_answer_must_be_a_newer_key_pair_of_this_device() -> None:
    file = _device_file(key_id=1)
    key = _new_key(2)
    answer = {
        "device_id": str(file.device_id),
        "provider_id": str(file.provider_id),
        "key_id": 2,
        "public_key": key.public_key,
        "private_key": key.private_key,
    }
    assert new_key_from_answer(answer, file) == key
    wrongs: list[tuple[dict[str, object], str]] = [
        ({"device_id": str(uuid.uuid4())}, "for device"),
        ({"key_id": 1}, "not newer"),
        ({"key_id": "2"}, "not a key number"),
        ({"public_key": file.public_key}, "not the private key's"),
        ({"private_key": "AAAA"}, "32 bytes"),
        ({"private_key": "%%"}, "incomplete"),
    ]
    for wrong, match in wrongs:
        with pytest.raises(ValueError, match=match):
            new_key_from_answer({**answer, **wrong}, file)
    with pytest.raises(ValueError, match="incomplete"):
        new_key_from_answer({k: v for k, v in answer.items() if k != "public_key"}, file)


# --- the journal rewrite -------------------------------------------------------------------


async def test_rewriting_keeps_the_order_and_leaves_acknowledged_and_other_records(
    tmp_path: Path,
) -> None:
    file = _device_file()
    journal = await _journal_with(tmp_path / "j.sqlite", file, acknowledged=2, pending=3)
    # A record of another topic in between (the reference client journals none; a device
    # built on the journal might).
    journal.append(lambda _: record_for(*file.identity().heartbeat(buffered=3)))
    journal.append(
        lambda counter: record_for(
            *file.identity().check_in(
                card_number=CARDS[0], activity=ACTIVITY, price_cents=9, counter=counter
            )
        )
    )
    before = _rows(journal)
    journal.request_rotation("k", "test", datetime.now(UTC))
    key = _new_key()
    new = replace(file, private_key=key.private_key, public_key=key.public_key, key_id=2)

    assert journal.rewrite_pending(resigning(new.identity()), new_key=key) == 4

    after = _rows(journal)
    assert [r[0] for r in after] == [r[0] for r in before]  # same seq: same send order
    heartbeat = [i for i, r in enumerate(before) if r[2] == topics.DEVICE_HEARTBEAT.name]
    assert heartbeat == [3] and after[3] == before[3]
    records = [p.record for p in journal.pending()]
    checkins = [r for r in records if r.topic == topics.CHECKIN_RECORDED.name]
    assert [_checkin(r).counter for r in checkins] == [3, 4, 5, 7]  # 1 and 2 were sent
    assert all(_verifies(r, key.public_key) for r in checkins)
    assert not any(_verifies(r, file.public_key) for r in checkins)
    assert {r.event_id for r in checkins}.isdisjoint({str(r[1]) for r in before})
    staged = journal.rotation()
    assert staged is not None and (staged.idempotency_key, staged.new_key) == ("k", key)
    journal.close()


async def test_a_failure_during_the_rewrite_changes_nothing(tmp_path: Path) -> None:
    file = _device_file()
    journal = await _journal_with(tmp_path / "j.sqlite", file, acknowledged=0, pending=4)
    before = _rows(journal)
    journal.request_rotation("k", "test", datetime.now(UTC))
    key = _new_key()
    sign = resigning(replace(file, private_key=key.private_key).identity())
    done = 0

    def crash_at_the_third(record: OutgoingRecord) -> OutgoingRecord | None:
        nonlocal done
        if done == 2:
            raise KeyboardInterrupt  # what a stop mid-way leaves: no commit
        done += 1
        return sign(record)

    with pytest.raises(KeyboardInterrupt):
        journal.rewrite_pending(crash_at_the_third, new_key=key)
    assert _rows(journal) == before
    staged = journal.rotation()
    assert staged is not None and staged.new_key is None  # still only asked for
    with pytest.raises(ValueError, match="no key rotation"):
        Journal(tmp_path / "other.sqlite").rewrite_pending(sign, new_key=key)
    journal.close()


def test_an_unanswered_request_is_asked_again_with_its_own_key_and_reason(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    first = journal.request_rotation("key-1", "tablet verloren", datetime.now(UTC))
    assert journal.request_rotation("key-2", "iets anders", datetime.now(UTC)) == first
    journal.abandon_rotation()
    assert journal.rotation() is None
    journal.close()


# --- the crash points of a rotation ---------------------------------------------------------


async def _rotation_ready(tmp_path: Path) -> tuple[Journal, Path, DeviceFile, NewKey]:
    file = _device_file()
    path = file.save(tmp_path / "devices")
    journal = await _journal_with(tmp_path / "j.sqlite", file, acknowledged=1, pending=3)
    journal.request_rotation("k", "test", datetime.now(UTC))
    return journal, path, file, _new_key()


def _assert_rotated(journal: Journal, path: Path, key: NewKey) -> None:
    installed = DeviceFile.load(path)
    assert (installed.public_key, installed.private_key, installed.key_id) == (
        key.public_key,
        key.private_key,
        key.key_id,
    )
    pending = [p.record for p in journal.pending()]
    assert len(pending) == 3
    assert all(_verifies(r, key.public_key) for r in pending)
    assert journal.rotation() is None


async def test_a_rotation_without_a_stop(tmp_path: Path) -> None:
    journal, path, file, key = await _rotation_ready(tmp_path)
    installed, resigned = install_new_key(journal, path, file, key)
    assert resigned == 3 and installed == DeviceFile.load(path)
    _assert_rotated(journal, path, key)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


async def test_stopped_before_the_device_file_the_next_start_installs_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal, path, file, key = await _rotation_ready(tmp_path)

    def power_cut(self: DeviceFile, path: Path) -> Path:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(DeviceFile, "write", power_cut)
        with pytest.raises(KeyboardInterrupt):
            install_new_key(journal, path, file, key)
    assert DeviceFile.load(path) == file  # the old key, and the journal signed with the new
    resigned = _rows(journal)

    assert finish_rotation(journal, path, DeviceFile.load(path)).public_key == key.public_key
    _assert_rotated(journal, path, key)
    assert _rows(journal) == resigned  # not re-signed a second time


async def test_stopped_after_the_device_file_the_next_start_only_tidies_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal, path, file, key = await _rotation_ready(tmp_path)

    def power_cut(self: Journal) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(Journal, "end_rotation", power_cut)
        with pytest.raises(KeyboardInterrupt):
            install_new_key(journal, path, file, key)
    assert journal.rotation() is not None
    written = path.stat().st_mtime_ns
    resigned = _rows(journal)

    finish_rotation(journal, path, DeviceFile.load(path))
    _assert_rotated(journal, path, key)
    assert (_rows(journal), path.stat().st_mtime_ns) == (resigned, written)


_CRASHING_ROTATION = """
import os, sys
from dataclasses import replace
from pathlib import Path
from vtp.device import devicefile, rotation
from vtp.device.devicefile import DeviceFile
from vtp.device.journal import Journal, NewKey

journal_path, device_path, key_id, public_key, private_key, crash_at = sys.argv[1:]
journal = Journal(Path(journal_path))
file = DeviceFile.load(Path(device_path))
key = NewKey(int(key_id), public_key, private_key)
if crash_at == "rewrite":
    sign = rotation.resigning(replace(file, private_key=private_key).identity())
    seen = []
    def crash_at_the_third(record):
        seen.append(record)
        if len(seen) == 3:
            os._exit(9)
        return sign(record)
    journal.rewrite_pending(crash_at_the_third, new_key=key)
else:
    def crash(*_):  # the new device file is written and synced, not yet renamed
        os._exit(9)
    devicefile.os.replace = crash
    rotation.install_new_key(journal, Path(device_path), file, key)
"""


@pytest.mark.parametrize("crash_at", ["rewrite", "rename"])
async def test_a_process_killed_during_the_rotation_ends_rotated_after_the_next_start(
    tmp_path: Path, crash_at: str
) -> None:
    journal, path, file, key = await _rotation_ready(tmp_path)
    before = _rows(journal)
    journal.close()
    killed = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-c",
            _CRASHING_ROTATION,
            str(tmp_path / "j.sqlite"),
            str(path),
            str(key.key_id),
            key.public_key,
            key.private_key,
            crash_at,
        ],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == 9, killed.stderr.decode()[-2000:]
    journal = Journal(tmp_path / "j.sqlite")
    assert DeviceFile.load(path) == file
    if crash_at == "rewrite":
        # Nothing committed: old key, old signatures, the request still unanswered (the
        # next `vtp device rotate` asks again with the same Idempotency-Key).
        assert _rows(journal) == before
        staged = journal.rotation()
        assert staged is not None and staged.new_key is None
        install_new_key(journal, path, file, key)
    else:
        staged = journal.rotation()
        assert staged is not None and staged.new_key == key  # committed before the kill
        assert path.with_name(f"{path.name}.tmp").exists()  # written, never renamed
        finish_rotation(journal, path, DeviceFile.load(path))
    _assert_rotated(journal, path, key)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    journal.close()


# --- the request -----------------------------------------------------------------------------


Answer = Exception | tuple[int, dict[str, object]]


def _client(answers: list[Answer], seen: list[httpx.Request]) -> httpx.Client:
    """Answers in turn: a status with a body, or an exception to raise."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[min(len(seen), len(answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        return httpx.Response(status, json=body)

    return httpx.Client(transport=httpx.MockTransport(handle), base_url="http://cards")


ASKED = Rotation("5b3f2a57-4b0c-4d3e-9a55-27b2c1f9f3a1", "tablet verloren", datetime.now(UTC))
DEVICE = uuid.uuid4()


def test_a_lost_answer_is_asked_for_again_with_the_same_idempotency_key() -> None:
    seen: list[httpx.Request] = []
    answers: list[Answer] = [
        httpx.ReadTimeout("slow"),
        (503, {"detail": "busy"}),
        (200, {"key_id": 2}),
    ]
    assert ask_for_new_key(_client(answers, seen), DEVICE, ASKED, sleep=lambda _: None) == {
        "key_id": 2
    }
    assert [r.url.path for r in seen] == [f"/devices/{DEVICE}/rotate"] * 3
    assert {r.headers["Idempotency-Key"] for r in seen} == {ASKED.idempotency_key}
    assert {r.content for r in seen} == {b'{"reason":"tablet verloren"}'}


@pytest.mark.parametrize(
    ("answers", "maybe_sent", "outcome"),
    [
        ([(409, {"detail": "device is revoked"})], False, NotRotated),
        ([httpx.ConnectError("refused")], False, NotRotated),
        ([httpx.ConnectError("refused")], True, MaybeRotated),  # asked before a crash
        ([httpx.ReadTimeout("slow"), (401, {"detail": "token"})], False, MaybeRotated),
        ([(502, {"detail": "proxy"})], False, MaybeRotated),
    ],
)
def test_only_a_refusal_or_no_connection_at_all_proves_nothing_was_rotated(
    answers: list[Answer], maybe_sent: bool, outcome: type[Exception]
) -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(outcome):
        ask_for_new_key(
            _client(answers, seen), DEVICE, ASKED, maybe_sent=maybe_sent, sleep=lambda _: None
        )
    refused = isinstance(answers[-1], tuple) and 400 <= answers[-1][0] < 500
    assert len(seen) == (len(answers) if refused else rotation.ATTEMPTS)


def test_backoff_grows_between_attempts() -> None:
    slept: list[float] = []
    with pytest.raises(MaybeRotated):
        ask_for_new_key(_client([httpx.ReadTimeout("x")], []), DEVICE, ASKED, sleep=slept.append)
    assert slept == [rotation.BACKOFF_S * 2**i for i in range(rotation.ATTEMPTS - 1)]
