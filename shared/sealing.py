"""Sealed boxes: personal data that must cross a topic is encrypted for its one recipient.

A sealed value is `v1.<ephemeral X25519 public key>.<nonce>.<ciphertext>` (base64url). The
sender needs only the recipient's public key; Kafka, logs and every other service see
opaque bytes. Names and IBANs for payments are sealed for finance, contact details for the
notifications service.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

_PREFIX = "v1"
_INFO = b"vrijetijdspas sealed box v1"


class SealError(ValueError):
    """The sealed value is malformed or was not sealed for this key."""


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def generate_keypair() -> tuple[str, str]:
    """(private, public) as base64url of the raw 32-byte keys."""
    private = X25519PrivateKey.generate()
    return (
        _b64e(private.private_bytes_raw()),
        _b64e(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)),
    )


def _key(shared_secret: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=ephemeral + recipient, info=_INFO).derive(shared_secret)


def seal(recipient_public_key: str, data: dict[str, Any]) -> str:
    recipient = X25519PublicKey.from_public_bytes(_b64d(recipient_public_key))
    ephemeral = X25519PrivateKey.generate()
    eph_pub = ephemeral.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    rec_pub = recipient.public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = _key(ephemeral.exchange(recipient), eph_pub, rec_pub)
    nonce = os.urandom(12)
    ciphertext = ChaCha20Poly1305(key).encrypt(nonce, json.dumps(data).encode(), None)
    return ".".join((_PREFIX, _b64e(eph_pub), _b64e(nonce), _b64e(ciphertext)))


def unseal(recipient_private_key: str, sealed: str) -> dict[str, Any]:
    try:
        prefix, eph_b64, nonce_b64, ct_b64 = sealed.split(".")
        if prefix != _PREFIX:
            raise SealError(f"unknown sealed-box version {prefix!r}")
        private = X25519PrivateKey.from_private_bytes(_b64d(recipient_private_key))
        eph_pub = _b64d(eph_b64)
        rec_pub = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        key = _key(private.exchange(X25519PublicKey.from_public_bytes(eph_pub)), eph_pub, rec_pub)
        plain = ChaCha20Poly1305(key).decrypt(_b64d(nonce_b64), _b64d(ct_b64), None)
    except SealError:
        raise
    except Exception as exc:
        raise SealError(f"cannot open sealed value: {type(exc).__name__}") from exc
    value = json.loads(plain)
    if not isinstance(value, dict):
        raise SealError("sealed value is not an object")
    return value
