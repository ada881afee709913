"""Key rotation on the device: ask the cards API for a new key, re-sign with it every
check-in (and cancellation) the broker has not acknowledged yet, and keep the new key in the
device file.

Once the claims service knows the new key it accepts the previous one only for check-ins
that reached the broker before the rotation; a check-in still in the journal will reach it
after, so it is re-signed: the same check-in (checkin_id, nonce, counter, card, activity,
price, occurred_at), a new signature, and so a new message with a fresh `ce_id` (a re-send
keeps `ce_id` *and* body, docs/device-protocol.md section 6).

Two files change, the journal and the device file, and the device may stop between any two
steps. The order, so that it never ends with a key the cards API no longer accepts, nor
with a check-in signed by the other key than the one it will sign the next with:

1. the journal remembers the request's Idempotency-Key (table `key_rotation`), then the
   request is sent, retried with that key: a lost answer is asked for again and, the
   cards API promises, the same new key comes back instead of a second rotation;
2. one journal transaction stores the new key in `key_rotation` and re-signs the pending
   check-ins with it: both or neither;
3. the device file is written with the new key (atomically: temporary file, rename);
4. the journal forgets the new key.

Every command of the reference client first finishes a rotation that stopped after step 2
(`finish_rotation`, steps 3 and 4 again), before it reads the key or signs anything. One
that stopped in step 1 without an answer leaves the old key and journal as they were; the
cards API may have rotated, so the client sends nothing (a record signed with the old key
may be refused) until `vtp device rotate` is run again and asks with the same key.

The client of the device must not run during a rotation (vtp/device/lock.py).
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared import topics
from shared.checkin_signature import canonical_checkin, public_key_b64, sign
from shared.envelope import Envelope, parse_headers
from shared.events.checkins import CheckInCancelled, CheckInRecorded
from shared.ids import uuid7
from shared.logging import get_logger
from shared.outbox import OutgoingRecord, record_for
from vtp.device.devicefile import DeviceFile
from vtp.device.journal import Journal, NewKey, Rotation
from vtp.device.signer import DeviceIdentity

log = get_logger(__name__)
CHECKIN_TOPIC = topics.CHECKIN_RECORDED.name
CANCELLATION_TOPIC = topics.CHECKIN_CANCELLED.name
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Read when a request is made (tests set them lower).
ATTEMPTS = 3
BACKOFF_S = 1.0


class NotRotated(RuntimeError):
    """The cards API certainly did not rotate the key: it refused, or was never reached."""


class MaybeRotated(RuntimeError):
    """No usable answer: the cards API may have rotated. Ask again with the same key."""


@dataclass(frozen=True)
class RotationOutcome:
    device_id: uuid.UUID
    key_id: int
    resigned: int
    device_file: Path
    repeated: bool  # the request repeated one whose answer was lost


def resign_checkin(
    record: OutgoingRecord,
    identity: DeviceIdentity,
    *,
    event_id: uuid.UUID | None = None,
    now: datetime | None = None,
) -> OutgoingRecord:
    """The same check-in signed by `identity`'s key, as a new message: a fresh `ce_id`
    (`event_id`) and `ce_time` (`now`); source, subject and correlation id kept, so the
    check-in can still be followed from its first message. ValueError when `record` is not
    a readable check-in of this device."""
    if record.topic != CHECKIN_TOPIC:
        raise ValueError(f"not a check-in but a record of {record.topic}")
    checkin = CheckInRecorded.model_validate_json(record.payload)
    if (checkin.device_id, checkin.provider_id) != (identity.device_id, identity.provider_id):
        raise ValueError(f"check-in {checkin.checkin_id} is another device's")
    signed = checkin.model_copy(
        update={
            "signature": sign(identity.private_key, canonical_checkin(checkin)),
            "key_id": identity.key_id,  # not signed: it tells claims which key to wait for
        }
    )
    old = parse_headers(record.headers)
    envelope = Envelope(
        id=event_id or uuid7(),
        type=old.type,
        source=old.source,
        time=now or datetime.now(UTC),
        subject=old.subject,
        correlation_id=old.correlation_id,
        causation_id=old.causation_id,
    )
    return record_for(envelope, signed)


def resign_cancellation(record: OutgoingRecord, identity: DeviceIdentity) -> OutgoingRecord:
    """The same cancellation signed by `identity`'s key, as a new message (a fresh `ce_id`
    and `ce_time`; subject and correlation id kept). ValueError when `record` is not a
    readable cancellation of this device."""
    if record.topic != CANCELLATION_TOPIC:
        raise ValueError(f"not a cancellation but a record of {record.topic}")
    cancellation = CheckInCancelled.model_validate_json(record.payload)
    if (cancellation.device_id, cancellation.provider_id) != (
        identity.device_id,
        identity.provider_id,
    ):
        raise ValueError(f"cancellation of {cancellation.checkin_id} is another device's")
    fresh, signed = identity.signed_cancellation(cancellation)
    old = parse_headers(record.headers)
    envelope = Envelope(
        id=fresh.id,
        type=old.type,
        source=old.source,
        time=fresh.time,
        subject=old.subject,
        correlation_id=old.correlation_id,
        causation_id=old.causation_id,
    )
    return record_for(envelope, signed)


def resigning(identity: DeviceIdentity) -> Callable[[OutgoingRecord], OutgoingRecord | None]:
    """For Journal.rewrite_pending: check-ins and cancellations re-signed, any other record
    left as it is."""

    def rewrite(record: OutgoingRecord) -> OutgoingRecord | None:
        resign = {CHECKIN_TOPIC: resign_checkin, CANCELLATION_TOPIC: resign_cancellation}.get(
            record.topic
        )
        if resign is None:
            return None
        try:
            return resign(record, identity)
        except ValueError as exc:  # unreadable: claims will dead-letter it as it is
            log.error("journal record not re-signed", event_id=record.event_id, error=str(exc))
            return None

    return rewrite


def new_key_from_answer(answer: object, file: DeviceFile) -> NewKey:
    """The new key from the rotate endpoint's answer; ValueError unless it is a key pair
    for this device, newer than the one in `file`."""
    if not isinstance(answer, dict):
        raise ValueError("the answer is not a JSON object")
    try:
        device_id = uuid.UUID(str(answer["device_id"]))
        provider_id = uuid.UUID(str(answer["provider_id"]))
        key_id = answer["key_id"]
        public_key = str(answer["public_key"])
        private_key = str(answer["private_key"])
        seed = base64.b64decode(private_key, validate=True)
    except (KeyError, ValueError, binascii.Error) as exc:
        raise ValueError(f"the answer is incomplete: {exc}") from exc
    if (device_id, provider_id) != (file.device_id, file.provider_id):
        raise ValueError(f"the answer is for device {device_id}, not {file.device_id}")
    if not isinstance(key_id, int) or isinstance(key_id, bool) or key_id < 1:
        raise ValueError(f"key_id {key_id!r} is not a key number")
    if file.key_id is not None and key_id <= file.key_id:
        raise ValueError(f"key_id {key_id} is not newer than the device's {file.key_id}")
    if len(seed) != 32:
        raise ValueError("private_key is not 32 bytes")
    if public_key_b64(Ed25519PrivateKey.from_private_bytes(seed)) != public_key:
        raise ValueError("public_key is not the private key's")
    return NewKey(key_id, public_key, private_key)


def with_new_key(file: DeviceFile, key: NewKey) -> DeviceFile:
    return replace(file, private_key=key.private_key, public_key=key.public_key, key_id=key.key_id)


def ask_for_new_key(
    http: httpx.Client,
    device_id: uuid.UUID,
    rotation: Rotation,
    *,
    maybe_sent: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> object:
    """POST /devices/{id}/rotate with the rotation's Idempotency-Key, tried ATTEMPTS times
    while there is no answer; the answer's JSON. `maybe_sent`: an earlier attempt (before a
    crash) may have reached the cards API, so no failure here proves nothing happened."""
    detail = "no attempt"
    for attempt in range(ATTEMPTS):
        if attempt:
            sleep(BACKOFF_S * 2 ** (attempt - 1))
        try:
            response = http.post(
                f"/devices/{device_id}/rotate",
                json={"reason": rotation.reason},
                headers={IDEMPOTENCY_HEADER: rotation.idempotency_key},
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            detail = f"{type(exc).__name__}: {exc}"  # not connected: nothing was sent
            continue
        except httpx.TransportError as exc:
            maybe_sent = True  # sent, perhaps handled, answer lost
            detail = f"{type(exc).__name__}: {exc}"
            continue
        if response.status_code >= 500:
            maybe_sent = True  # a proxy's 502/504 says nothing about the service behind it
            detail = f"{response.status_code}: {response.text[:300]}"
            continue
        if response.status_code >= 400:
            detail = f"{response.status_code}: {response.text[:300]}"
            break
        try:
            return response.json()
        except ValueError as exc:
            raise MaybeRotated(f"unreadable answer ({response.status_code}): {exc}") from exc
    raise (MaybeRotated if maybe_sent else NotRotated)(detail)


def install_new_key(
    journal: Journal, path: Path, file: DeviceFile, key: NewKey
) -> tuple[DeviceFile, int]:
    """Steps 2 to 4: the pending check-ins re-signed and the key staged in one journal
    transaction, then the device file, then the staged key forgotten. The new device file
    and the number of check-ins re-signed."""
    new_file = with_new_key(file, key)
    resigned = journal.rewrite_pending(resigning(new_file.identity()), new_key=key)
    return finish_rotation(journal, path, file), resigned


def finish_rotation(journal: Journal, path: Path, file: DeviceFile) -> DeviceFile:
    """Steps 3 and 4 of a rotation whose journal transaction committed (a no-op when there
    is none): the device file at `path` as it must be now."""
    rotation = journal.rotation()
    if rotation is None or rotation.new_key is None:
        return file
    if file.public_key != rotation.new_key.public_key:
        file = with_new_key(file, rotation.new_key)
        file.write(path)
    journal.end_rotation()
    return file


def rotate(
    journal: Journal,
    path: Path,
    file: DeviceFile,
    http: httpx.Client,
    reason: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> RotationOutcome:
    """A whole rotation (the caller holds the device's lock). Raises NotRotated (nothing
    changed) or MaybeRotated (nothing changed locally; the request is remembered, run again)."""
    file = finish_rotation(journal, path, file)
    earlier = journal.rotation()
    rotation = journal.request_rotation(str(uuid.uuid4()), reason, datetime.now(UTC))
    try:
        answer = ask_for_new_key(
            http, file.device_id, rotation, maybe_sent=earlier is not None, sleep=sleep
        )
    except NotRotated:
        journal.abandon_rotation()
        raise
    try:
        key = new_key_from_answer(answer, file)
    except ValueError as exc:
        raise MaybeRotated(f"the answer is not a new key for this device: {exc}") from exc
    _, resigned = install_new_key(journal, path, file, key)
    return RotationOutcome(file.device_id, key.key_id, resigned, path, earlier is not None)
