"""Free text people type (names, reasons, addresses): printable only. PostgreSQL refuses the
NUL character in `text` columns, so a NUL that got past the schema failed the write with an
error the caller could not act on; other control characters are never meant, and an escape
sequence in a name would reach a terminal that shows the audit log."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

# Tab and line ends are allowed where a text may have lines (a postal address).
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_CONTROL_BUT_LINES = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("contains a control character (such as NUL or a line break)")
    return value


def _printable_lines(value: str) -> str:
    if _CONTROL_BUT_LINES.search(value):
        raise ValueError("contains a control character (such as NUL)")
    return value


PlainText = Annotated[str, AfterValidator(_printable)]
MultilineText = Annotated[str, AfterValidator(_printable_lines)]
