"""The SMTP sink's mailbox gives back every message as it came, in order, whatever the
messages hold (lines that look like mbox separators included)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from vtp.devstack.smtp import mbox_entry, read_mbox

LINE = st.one_of(
    st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    st.sampled_from([b"From ", b"From x@y Fri Nov 27 10:00:00 2026", b">From ", b">>From a", b""]),
)
MESSAGE = st.lists(LINE, min_size=1, max_size=12).map(lambda lines: b"\n".join(lines) + b"\n")


@given(st.lists(MESSAGE, max_size=6))
def test_every_message_comes_back_as_it_was_sent(messages: list[bytes]) -> None:
    entries = b"".join(mbox_entry(m.replace(b"\n", b"\r\n"), "a@b", 0.0) for m in messages)
    assert _read(entries) == messages


def test_a_separator_line_in_a_body_is_quoted_on_disk() -> None:
    entry = mbox_entry(b"Subject: x\r\n\r\nFrom here on\r\n>From there\r\n", None, 0.0)
    assert entry.splitlines() == [
        b"From MAILER-DAEMON Thu Jan  1 00:00:00 1970",
        b"Subject: x",
        b"",
        b">From here on",
        b">>From there",
        b"",
    ]


def test_no_mailbox_yet_means_no_messages(tmp_path: Path) -> None:
    assert read_mbox(tmp_path / "sent.mbox") == []


def _read(content: bytes) -> list[bytes]:
    # Not pytest's tmp_path: hypothesis runs the test many times within one fixture.
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sent.mbox"
        path.write_bytes(content)
        return read_mbox(path)
