"""Files that hold personal data (names, postal addresses, IBANs), readable by their owner
only from the moment they exist: created with mode 0600, never written first and chmod-ed
after, when another account could open them in between."""

from __future__ import annotations

import os
from pathlib import Path

OWNER_ONLY = 0o600


def write_private(path: Path, content: bytes) -> None:
    """Create or replace `path` with `content`, mode 0600 whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, OWNER_ONLY)
    with os.fdopen(fd, "wb") as handle:
        # A file that existed already keeps its old mode under O_CREAT: narrow it first.
        os.fchmod(handle.fileno(), OWNER_ONLY)
        handle.write(content)
