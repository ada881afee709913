"""Which of a holder's grants a check-in falls under: pure rules, no I/O.

A holder can hold several grants over time (an early renewal, a new target group), and a
check-in may arrive weeks late: it is judged and priced by the grant in force on its own
business day, never by the newest one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Grant:
    target_group: str
    eligible_from: date
    eligible_until: date
    grace_days: int

    def covers(self, day: date) -> bool:
        """From the first day to the end date plus the grace days, both inclusive. Counted
        without adding the grace days to the end date: a grant ending near 31 December 9999
        (the events allow it) raised OverflowError for every check-in of its holder."""
        return self.eligible_from <= day and (day - self.eligible_until).days <= self.grace_days


def grant_on(grants: Iterable[Grant], day: date) -> Grant | None:
    """The grant in force on `day`, or None. When grants overlap, a grant within its own
    period beats one only in its grace days (a renewal takes over when it starts), then the
    later start (the referrer's newer decision), then the later end; the target group name
    and grace days only make the choice deterministic."""
    covering = [g for g in grants if g.covers(day)]
    if not covering:
        return None
    return max(
        covering,
        key=lambda g: (
            day <= g.eligible_until,
            g.eligible_from,
            g.eligible_until,
            g.target_group,
            g.grace_days,
        ),
    )
