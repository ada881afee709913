"""`vtp status`'s verdict: from each service's readiness answer and the consumer groups'
lag, what is wrong, in words an operator can act on. Pure: the answers come in as data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vtp.operations.deadletters import Group
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


def health_of(name: str, status: int | None, body: Any, error: str | None = None) -> ServiceHealth:
    """A service's `GET /health/ready` answer (status and JSON body), or the error that
    stood in for one (`status` None)."""
    if status is None:
        return ServiceHealth(name, False, f"no answer: {error or 'unknown error'}")
    answer: Mapping[str, Any] = body if isinstance(body, Mapping) else {}
    if status != 200:
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
        consumers_stalled=tuple(
            (str(c.get("consumer")), float(c.get("stalled_s") or 0), str(c.get("error") or "?"))
            for c in answer.get("consumers_stalled") or ()
            if isinstance(c, Mapping)
        ),
    )


@dataclass(frozen=True)
class Limits:
    lag_records: int = 10_000  # behind on one topic by more is a problem
    outbox_wait_s: float = 60.0  # an event unpublished for longer is a problem
    # A check-in parked for longer waits for a device whose registration is not coming by
    # itself (a registration reaches claims within seconds when all is well).
    parked_checkin_wait_s: float = 600.0
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
        found += [
            f"{s.name}: consumer {consumer} has got no batch through for {seconds:.0f} s"
            f" ({error}): its log says why (`transient failure, retrying batch` or"
            " `batch failed`)"
            for consumer, seconds, error in s.consumers_stalled
            if seconds > limits.consumer_stall_s
        ]
    found += [
        f"{lag.group} is {lag.behind:,} record(s) behind on {lag.topic}"
        for lag in over(lags, limits.lag_records)
    ]
    return found


def dead_letter_problems(groups: list[Group], since: str) -> list[str]:
    """Messages a consumer refused within the window checked: each kind is a problem, as
    it asks someone to find out why (a device, a release, a fault)."""
    return [
        f"{g.count} message(s) from {g.source_topic} dead-lettered by {g.consumer} since"
        f" {since} ({g.reason}): `vtp deadletters list --since {since}`"
        for g in groups
    ]
