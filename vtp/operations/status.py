"""`vtp status`'s verdict: from each service's readiness answer and the consumer groups'
lag, what is wrong, in words an operator can act on. Pure: the answers come in as data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from vtp.operations.deadletters import Group, is_time_ago
from vtp.operations.lag import TopicLag, over


@dataclass(frozen=True)
class ServiceHealth:
    name: str
    ready: bool
    detail: str  # why it is not ready; empty when it is
    outbox_pending: int = 0
    outbox_oldest_pending_s: float | None = None
    outbox_parked: int = 0
    # Claims' check-ins waiting for their device's registration; None: the service has none.
    checkins_parked: int | None = None
    checkins_parked_oldest_s: float | None = None
    # Its consumers that have got no batch through for a while: (consumer, seconds, error).
    consumers_stalled: tuple[tuple[str, float, str], ...] = ()
    # Claims' cancellations waiting for their device (or key), and payment returns waiting
    # for their settlement: (how many, the oldest's wait in seconds).
    cancellations_parked: tuple[int, float | None] = (0, None)
    returns_waiting: tuple[int, float | None] = (0, None)


def health_of(
    name: str, status: int | None, body: Any, error: str | None = None, url: str = ""
) -> ServiceHealth:
    """A service's `GET /health/ready` answer (status and JSON body), or the error that
    stood in for one (`status` None), with what it points at in words."""
    if status is None:
        return ServiceHealth(name, False, no_answer(error or "unknown error", url))
    answer: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    if status != 200:
        if status == 503 and answer.get("status") == "not ready":
            # Our services' readiness is a query of their database (shared/http.py): this
            # answer means the process runs and its database does not answer it.
            return ServiceHealth(
                name,
                False,
                f"HTTP 503: its database did not answer ({answer.get('reason') or '?'}):"
                " is PostgreSQL running and reachable? its log says more",
            )
        return ServiceHealth(name, False, f"HTTP {status}: {answer.get('reason', 'not ready')}")
    oldest = answer.get("outbox_oldest_pending_s")
    parked = answer.get("checkins_parked")
    parked_oldest = answer.get("checkins_parked_oldest_s")
    return ServiceHealth(
        name,
        True,
        "",
        outbox_pending=int(answer.get("outbox_pending") or 0),
        outbox_oldest_pending_s=None if oldest is None else float(oldest),
        outbox_parked=int(answer.get("outbox_parked") or 0),
        checkins_parked=None if parked is None else int(parked),
        checkins_parked_oldest_s=None if parked_oldest is None else float(parked_oldest),
        cancellations_parked=_waiting(answer, "cancellations_parked"),
        returns_waiting=_waiting(answer, "returns_waiting"),
        consumers_stalled=tuple(
            (str(c.get("consumer")), float(c.get("stalled_s") or 0), str(c.get("error") or "?"))
            for c in answer.get("consumers_stalled") or ()
            if isinstance(c, Mapping)
        ),
    )


def _waiting(answer: Mapping[str, Any], name: str) -> tuple[int, float | None]:
    oldest = answer.get(f"{name}_oldest_s")
    return int(answer.get(name) or 0), None if oldest is None else float(oldest)


def no_answer(error: str, url: str) -> str:
    """Why a service gave no answer at all, by the client's error: nothing listening (the
    process is gone), or a process that does not answer in time (hung, or overloaded)."""
    where = f" at {url}" if url else ""
    if error in ("ConnectError", "ConnectionRefusedError"):
        return (
            f"no answer: ConnectError, nothing listens{where}: is its process running?"
            " its log says why it stopped"
        )
    if "Timeout" in error:
        return (
            f"no answer: {error}, nothing came back{where} in time: its process hangs"
            " (stopped, or stuck in one task) or is overloaded"
        )
    return f"no answer: {error}{where}"


def process_gone(health: ServiceHealth, pid: int, ended: str, log: str) -> ServiceHealth:
    """A service that did not answer, whose process (started by `vtp up`) has ended (`ended`:
    `was killed by SIGKILL`, `exited with status 1`, `has exited`): said as such, with what
    to do, since nothing restarts it."""
    if "SIGKILL" in ended:
        why = "something outside it killed it (the kernel's OOM killer: `dmesg`; or a person)"
    else:
        why = f"the last lines of {log} say why"
    return replace(
        health,
        detail=f"its process (pid {pid}) {ended}, and `vtp up` does not restart it: {why};"
        " restart the stack (Ctrl-C `vtp up`, then `vtp up`)",
    )


def process_stopped(health: ServiceHealth, pid: int) -> ServiceHealth:
    """A service that did not answer because its process is stopped (SIGSTOP, Ctrl-Z)."""
    return replace(health, detail=f"its process (pid {pid}) is {PAUSED.format(pid=pid)}")


PAUSED = "stopped (SIGSTOP or Ctrl-Z), not hung: `kill -CONT {pid}` resumes it"


@dataclass(frozen=True)
class Limits:
    lag_records: int = 10_000  # behind on one topic by more is a problem
    outbox_wait_s: float = 60.0  # an event unpublished for longer is a problem
    # A check-in parked for longer waits for a device whose registration is not coming by
    # itself (a registration reaches claims within seconds when all is well).
    parked_checkin_wait_s: float = 600.0
    # A payment return waiting longer for its settlement: the settlement is not coming by
    # itself (it comes within seconds when all is well).
    return_wait_s: float = 600.0
    # A consumer that got no batch through for longer is stuck, not catching its breath
    # (a transient failure's retries back off to 5 s).
    consumer_stall_s: float = 30.0


@dataclass(frozen=True)
class GroupLag:
    group: str
    behind: int
    worst_topic: str | None  # the topic it is furthest behind on, if behind at all
    worst_behind: int


def per_group(lags: list[TopicLag]) -> list[GroupLag]:
    groups: dict[str, list[TopicLag]] = {}
    for lag in lags:
        groups.setdefault(lag.group, []).append(lag)
    summary = []
    for group, mine in sorted(groups.items()):
        worst = max(mine, key=lambda lag: lag.behind)
        summary.append(
            GroupLag(
                group,
                sum(lag.behind for lag in mine),
                worst.topic if worst.behind else None,
                worst.behind,
            )
        )
    return summary


def problems(services: list[ServiceHealth], lags: list[TopicLag], limits: Limits) -> list[str]:
    """Each problem once, services first (a service that is down explains its lag)."""
    found: list[str] = []
    for s in services:
        if not s.ready:
            found.append(f"{s.name} is not ready ({s.detail})")
            continue
        if s.outbox_parked:
            found.append(
                f"{s.name} has {s.outbox_parked} outbox record(s) parked: the broker will not"
                " take them as they are (README: parked outbox rows)"
            )
        if (
            s.outbox_oldest_pending_s is not None
            and s.outbox_oldest_pending_s > limits.outbox_wait_s
        ):
            found.append(
                f"{s.name} has {s.outbox_pending} event(s) waiting to be published, the oldest"
                f" for {s.outbox_oldest_pending_s:.0f} s: is the broker reachable?"
            )
        if (
            s.checkins_parked_oldest_s is not None
            and s.checkins_parked_oldest_s > limits.parked_checkin_wait_s
        ):
            found.append(
                f"{s.name} has {s.checkins_parked} check-in(s) waiting for a device (or a"
                f" device's new key) it does not know, the oldest for"
                f" {s.checkins_parked_oldest_s / 60:.0f} min: was the device registered with"
                " the cards service? (GET /checkins/parked names it)"
            )
        cancellations, oldest = s.cancellations_parked
        if oldest is not None and oldest > limits.parked_checkin_wait_s:
            found.append(
                f"{s.name} has {cancellations} cancellation(s) waiting for a device (or a"
                f" device's new key) it does not know, the oldest for {oldest / 60:.0f} min:"
                " the check-ins they cancel are still refunded meanwhile; was the device"
                " registered with the cards service? (GET /checkins/parked names it)"
            )
        returns, oldest = s.returns_waiting
        if oldest is not None and oldest > limits.return_wait_s:
            found.append(
                f"{s.name} has {returns} payment return(s) waiting for their settlement, the"
                f" oldest for {oldest / 60:.0f} min: was the settlement dead-lettered?"
                " (`vtp deadletters list`; after a week they are dead-lettered too)"
            )
        found += [
            f"{s.name}: consumer {consumer} has got no batch through for {seconds:.0f} s"
            f" ({error}): its log says why (`transient failure, retrying batch` or"
            " `batch failed`)"
            for consumer, seconds, error in s.consumers_stalled
            if seconds > limits.consumer_stall_s
        ]
    found += [
        f"{lag.group} is {lag.behind:,} record(s) behind on {lag.topic}: busy with a burst,"
        " or slowed down? `vtp lag` again in a minute shows whether it shrinks (a consumer"
        " that gets nothing through is named on its own, as stalled)"
        for lag in over(lags, limits.lag_records)
    ]
    return found


def broker_problem(bootstrap: str, error: str, paused_pid: int | None = None) -> str:
    """The broker gave no answer; `paused_pid`: that of `vtp up`'s broker, found stopped."""
    ask = (
        f"its process (pid {paused_pid}) is {PAUSED.format(pid=paused_pid)}."
        if paused_pid is not None
        else "is it running and reachable?"
    )
    return (
        f"the broker at {bootstrap} did not answer ({error}): {ask} Until it is back the"
        " services keep their events in their outboxes, and consumer lag and dead letters"
        " cannot be read"
    )


# A pending e-mail that failed this many times in a row (2 s, 4 s, 8 s apart: about 15 s
# with the defaults) fails for a reason that does not pass by itself.
MAIL_FAILURES = 4


def mail_problems(
    pending: Sequence[Mapping[str, Any]], min_attempts: int = MAIL_FAILURES
) -> list[str]:
    """From notifications' pending e-mail deliveries (`GET /deliveries?status=pending`):
    mail our relay does not take. A recipient's mailbox refusing for now (`recipient
    refused`) is that address's trouble, not the relay's, and not counted."""
    failing = [
        d
        for d in pending
        if int(d.get("attempts") or 0) >= min_attempts
        and d.get("last_error")
        and "recipient refused" not in str(d.get("last_error"))
    ]
    if not failing:
        return []
    latest = str(failing[0].get("last_error"))[:160]
    return [
        f"notifications cannot deliver e-mail: {len(failing)} pending message(s) failed"
        f" {min_attempts} times or more in a row, the latest with `{latest}`: is the mail"
        " relay (SMTP) running and reachable? Once it is, they go out at their next retry"
        " (at most an hour apart); `GET /deliveries?status=pending` on notifications lists"
        " them and `POST /deliveries/{id}/retry` sends one at once"
    ]


def dead_letter_problems(groups: list[Group], since: str) -> list[str]:
    """Messages a consumer refused within the window checked: each kind is a problem, as
    it asks someone to find out why (a device, a release, a fault), and says what can be
    done with them."""
    window = f"in the last {since}" if is_time_ago(since) else f"since {since}"
    found = []
    for g in groups:
        detail = f": {g.detail[:120]}" if g.detail else ""
        then = (
            f"once its cause is gone (a consumer older than the event, a fault since fixed),"
            f" `vtp deadletters redrive --reason {g.reason}` sends them back"
            if g.redrivable
            else "they will not be processed as they are (a redrive would be refused again)"
        )
        found.append(
            f"{g.count} message(s) from {g.source_topic} dead-lettered by {g.consumer}"
            f" {window} ({g.reason}{detail}): {then}; `vtp deadletters list --since {since}`"
        )
    return found
