"""Personal data at rest: encrypted with a key per person (AES-GCM), that key wrapped by the
service's master key. Erasing a person destroys their key: the ciphertext stays, unreadable
("crypto-shredding"), and every event and ledger line keeps only opaque ids."""

from __future__ import annotations

import json
import os
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class PersonalDataVault:
    def __init__(self, master_key_hex: str) -> None:
        self._master = AESGCM(bytes.fromhex(master_key_hex))

    def new_data_key(self) -> bytes:
        """A fresh person key, returned wrapped (only the wrapped form is stored)."""
        key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(12)
        return nonce + self._master.encrypt(nonce, key, b"person-key")

    def _unwrap(self, wrapped: bytes) -> AESGCM:
        return AESGCM(self._master.decrypt(wrapped[:12], wrapped[12:], b"person-key"))

    def encrypt(self, wrapped_key: bytes, data: dict[str, Any]) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._unwrap(wrapped_key).encrypt(nonce, json.dumps(data).encode(), None)

    def decrypt(self, wrapped_key: bytes, blob: bytes) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(
            self._unwrap(wrapped_key).decrypt(blob[:12], blob[12:], None)
        )
        return value
