"""Every port the dev stack hands out is its own, even when the kernel offers one twice."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from vtp.devstack import processes


class _Socket:
    """A socket whose bind to port 0 gets the next port of a script."""

    def __init__(self, offered: Iterator[int]) -> None:
        self._offered = offered
        self._port = 0

    def __enter__(self) -> _Socket:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def bind(self, _address: tuple[str, int]) -> None:
        self._port = next(self._offered)

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self._port)


def test_a_port_offered_again_is_not_handed_out_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    offered = iter([41001, 41001, 41001, 41002])
    monkeypatch.setattr(processes, "_HANDED_OUT", set())
    monkeypatch.setattr(socket, "socket", lambda *_args, **_kw: _Socket(offered))
    assert [processes.free_port(), processes.free_port()] == [41001, 41002]


def test_real_ports_are_distinct_and_bindable() -> None:
    ports = [processes.free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", ports[-1]))  # free when handed out
