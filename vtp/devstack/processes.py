"""Small helpers for the child processes the dev stack owns: free ports, waiting, stopping."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path


def child_setup(sig: int = signal.SIGTERM, nice: int = 0) -> Callable[[], None] | None:
    """A `preexec_fn` that asks Linux to signal the child when its parent dies, so a harness
    killed by a timeout (SIGKILL, no clean-up) cannot leave a broker, a database or services
    running, and lowers the child's CPU priority by `nice`. It runs after any user switch,
    so it also holds for PostgreSQL's own user."""
    linux = sys.platform.startswith("linux")
    if not linux and not nice:
        return None
    libc = ctypes.CDLL(None, use_errno=True) if linux else None

    def arm() -> None:
        if libc is not None:
            libc.prctl(_PR_SET_PDEATHSIG, sig)
        if nice:
            lower_priority(nice)

    return arm


def lower_priority(nice: int) -> None:
    """Nice the calling process. The child runs in a session of its own, and with the
    kernel's autogroup scheduling (on by default on desktops and many servers) a nice value
    only ranks processes *within* their session's group; the group's own nice value ranks
    it against the other sessions, so both are set. Best effort: where autogroup is off or
    /proc is not writable, the process nice alone applies."""
    os.nice(nice)
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(str(nice))


_PR_SET_PDEATHSIG = 1


def spawn(
    command: list[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    death_signal: int = signal.SIGTERM,
    nice: int = 0,
) -> subprocess.Popen[bytes]:
    """A child of the dev stack: output appended to its log file, in a session of its own
    (Ctrl-C in the terminal goes to `vtp up`, which stops it), signalled when its parent
    dies, and `nice` steps below normal CPU priority."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command,
            env=None if env is None else dict(env),
            user=user,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=child_setup(death_signal, nice),  # noqa: PLW1509 - prctl and nice only
        )


# Ports this process has handed out. A port is free when asked for and bound later by a
# child; the kernel may offer a port it just released again, and two services of one
# stack then got the same port (seen in CI: cards bound it, claims failed to, and the
# health check reached cards on claims' address).
_HANDED_OUT: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now and this process has not handed out before."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


def wait_until(
    check: Callable[[], bool], *, timeout_s: float, what: str, interval_s: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval_s)
    raise TimeoutError(f"{what} did not become ready within {timeout_s:.0f} s")


def stop_process(
    proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, timeout_s: float = 15
) -> None:
    """Stop a child by its pid: the signal first, SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGCONT)  # a paused process cannot handle SIGTERM
        os.kill(proc.pid, sig)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(5)
