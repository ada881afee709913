"""The workload, generated from a seed: which holder checks in where, when, for how much,
and which messages are duplicates, forgeries, late arrivals or garbage. The same seed gives
the same workload (the ids the stack hands out are mapped onto it afterwards)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    VALID = "valid"
    LATE = "late"  # a device that was offline for days
    DUPLICATE = "duplicate"  # the very same message again
    RESENT = "resent"  # the same check-in in a new envelope (a device retry)
    FORGED = "forged"  # signature does not match
    UNKNOWN_CARD = "unknown_card"
    FUTURE = "future"  # device clock days ahead
    MALFORMED = "malformed"  # not even JSON


@dataclass(frozen=True)
class PlannedCheckIn:
    index: int
    kind: Kind
    holder: int
    provider: int
    device: int  # 0 or 1: each provider has two devices
    activity: int
    minutes_ago: int
    repeats: int | None = None  # for DUPLICATE / RESENT: the index of the original


@dataclass(frozen=True)
class Workload:
    seed: int
    holders: int
    checkins: tuple[PlannedCheckIn, ...]
    cancellations: tuple[int, ...]  # indexes of check-ins the provider cancels


_WEIGHTS = (
    (Kind.VALID, 82),
    (Kind.LATE, 5),
    (Kind.DUPLICATE, 4),
    (Kind.RESENT, 2),
    (Kind.FORGED, 2),
    (Kind.UNKNOWN_CARD, 2),
    (Kind.FUTURE, 1),
    (Kind.MALFORMED, 2),
)


def generate(
    seed: int, count: int, providers: list[int], *, holders: int | None = None
) -> Workload:
    """`providers[i]` is the number of activities of provider i."""
    rng = random.Random(seed)
    holder_count = holders or max(20, count // 25)
    kinds = [k for k, _ in _WEIGHTS]
    weights = [w for _, w in _WEIGHTS]
    planned: list[PlannedCheckIn] = []
    originals: list[int] = []
    for index in range(count):
        kind = rng.choices(kinds, weights)[0]
        if kind in (Kind.DUPLICATE, Kind.RESENT) and not originals:
            kind = Kind.VALID
        provider = rng.randrange(len(providers))
        base = PlannedCheckIn(
            index=index,
            kind=kind,
            holder=rng.randrange(holder_count),
            provider=provider,
            device=rng.randrange(2),
            activity=rng.randrange(providers[provider]),
            minutes_ago=rng.randint(0, 60 * 24 * 3)
            if kind is not Kind.LATE
            else rng.randint(60 * 24 * 4, 60 * 24 * 20),
        )
        if kind in (Kind.DUPLICATE, Kind.RESENT):
            base = PlannedCheckIn(index, kind, 0, 0, 0, 0, 0, repeats=rng.choice(originals[-500:]))
        elif kind in (Kind.VALID, Kind.LATE):
            originals.append(index)
        planned.append(base)
    valid = [p.index for p in planned if p.kind in (Kind.VALID, Kind.LATE)]
    cancellations = tuple(sorted(rng.sample(valid, k=max(1, len(valid) // 100))))
    return Workload(seed, holder_count, tuple(planned), cancellations)
