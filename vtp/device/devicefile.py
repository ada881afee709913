"""The device file: a device's ids and private key, as JSON readable only by its owner.

Written at registration (the cards API returns the private key only then) to
`<state>/devices/<device_id>.json` with mode 0600, and again at each key rotation;
everything the device needs to sign.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vtp.device.signer import DeviceIdentity

_OWNER_ONLY = 0o600


class DeviceFileError(ValueError):
    """The device file is missing, unreadable, or readable by others."""


@dataclass(frozen=True)
class DeviceFile:
    device_id: uuid.UUID
    provider_id: uuid.UUID
    private_key: str
    public_key: str
    cards_url: str | None = None
    # Which of the device's keys this is (1 at registration, +1 per rotation); None in a
    # file written before it was kept.
    key_id: int | None = None

    @classmethod
    def from_registration(cls, data: dict[str, Any], cards_url: str | None = None) -> DeviceFile:
        return cls(
            device_id=uuid.UUID(str(data["device_id"])),
            provider_id=uuid.UUID(str(data["provider_id"])),
            private_key=str(data["private_key"]),
            public_key=str(data["public_key"]),
            cards_url=cards_url,
            key_id=int(data["key_id"]) if data.get("key_id") is not None else None,
        )

    def identity(self) -> DeviceIdentity:
        return DeviceIdentity.from_registration(
            {
                "device_id": str(self.device_id),
                "provider_id": str(self.provider_id),
                "private_key": self.private_key,
                "key_id": self.key_id,
            }
        )

    def save(self, directory: Path) -> Path:
        return self.write(directory / f"{self.device_id}.json")

    def write(self, path: Path) -> Path:
        directory = path.parent
        directory.mkdir(parents=True, exist_ok=True)
        body = {
            "device_id": str(self.device_id),
            "provider_id": str(self.provider_id),
            "private_key": self.private_key,
            "public_key": self.public_key,
            "cards_url": self.cards_url,
            "key_id": self.key_id,
        }
        # The cards API hands out the key once: a power cut or a full disk must leave the
        # whole file or the one before it, never an empty one. So: a temporary file, 0600
        # from the start (never readable by others), synced, renamed over the name, and
        # the directory synced so that the rename itself survives.
        temporary = path.with_name(f"{path.name}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _OWNER_ONLY)
        try:
            with os.fdopen(fd, "w") as handle:
                os.fchmod(handle.fileno(), _OWNER_ONLY)  # a leftover keeps its mode under O_CREAT
                json.dump(body, handle, indent=2)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        directory_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)
        return path

    @classmethod
    def load(cls, path: Path) -> DeviceFile:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DeviceFileError(f"cannot read device file {path}: {exc}") from exc
        if mode & 0o077:
            raise DeviceFileError(
                f"device file {path} has mode {mode:o}; it holds a private key, make it 0600"
            )
        try:
            return cls(
                device_id=uuid.UUID(data["device_id"]),
                provider_id=uuid.UUID(data["provider_id"]),
                private_key=data["private_key"],
                public_key=data["public_key"],
                cards_url=data.get("cards_url"),
                key_id=None if data.get("key_id") is None else int(data["key_id"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DeviceFileError(f"device file {path} is incomplete: {exc}") from exc


def find_device_file(directory: Path, device: str | None) -> Path:
    """The file of `device` (an id or a path), or the only device file when none is named."""
    if device:
        candidate = Path(device)
        if candidate.suffix == ".json" and candidate.exists():
            return candidate
        return directory / f"{device}.json"
    files = sorted(directory.glob("*.json"))
    if len(files) != 1:
        raise DeviceFileError(f"{len(files)} device files in {directory}: name one with --device")
    return files[0]
