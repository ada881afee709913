"""An independent reference model of the refund policy: a plain reading of the rules, run
over the generated workload in emission order. It shares no code with the claims service —
only the event schemas and the policy file's meaning."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

BRUSSELS = ZoneInfo("Europe/Brussels")

# The policy the chaos run gives the claims service; the model reads the same numbers.
CHAOS_POLICY_TOML = """\
municipality = "Chaos"
budget_year = "calendar"

[[versions]]
effective_from = "2020-01-01"
cap_per_checkin_cents = 2500
yearly_budget_cents = 15000
once_per_activity_per_day = true
eligible_categories = ["culture", "sport", "youth", "course", "membership"]
checkin_window_days = 30
future_tolerance_seconds = 300

[versions.discount_basis_points]
poverty = 7500
disability = 5000
senior = 2500
"""
DISCOUNT_BP = {"poverty": 7500, "disability": 5000, "senior": 2500}
CAP_CENTS = 2500
YEARLY_BUDGET_CENTS = 15000


@dataclass(frozen=True)
class Visit:
    """A check-in as the model sees it."""

    holder: str  # holder id
    target_group: str
    provider: str
    till_discount: bool
    activity: str
    price_cents: int
    occurred_at: datetime


@dataclass(frozen=True)
class Expected:
    outcome: str  # approved | capped | rejected
    reason: str | None
    amount_cents: int
    payee: str | None  # "holder:<id>" or "provider:<id>"


@dataclass
class Model:
    used: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    taken: set[tuple[str, str, str, date]] = field(default_factory=set)
    outcomes: dict[str, Expected] = field(default_factory=dict)  # by check-in id
    visits: dict[str, Visit] = field(default_factory=dict)

    def check_in(
        self,
        checkin_id: str,
        visit: Visit | None,
        *,
        unknown_card: bool = False,
        in_future: bool = False,
    ) -> Expected:
        if checkin_id in self.outcomes:
            return self.outcomes[checkin_id]  # a duplicate changes nothing
        result = self._judge(visit, unknown_card, in_future)
        self.outcomes[checkin_id] = result
        if visit is not None:
            self.visits[checkin_id] = visit
        return result

    def _judge(self, visit: Visit | None, unknown_card: bool, in_future: bool) -> Expected:
        if in_future:
            return Expected("rejected", "in_the_future", 0, None)
        if unknown_card or visit is None:
            return Expected("rejected", "unknown_card", 0, None)
        day = visit.occurred_at.astimezone(BRUSSELS).date()
        if (visit.holder, visit.provider, visit.activity, day) in self.taken:
            return Expected("rejected", "already_today", 0, None)
        discount = (visit.price_cents * DISCOUNT_BP.get(visit.target_group, 0) + 5000) // 10000
        if discount <= 0:
            return Expected("rejected", "nothing_to_refund", 0, None)
        remaining = YEARLY_BUDGET_CENTS - self.used[(visit.holder, day.year)]
        if remaining <= 0:
            return Expected("rejected", "budget_exhausted", 0, None)
        amount = min(discount, CAP_CENTS, remaining)
        self.used[(visit.holder, day.year)] += amount
        self.taken.add((visit.holder, visit.provider, visit.activity, day))
        payee = f"provider:{visit.provider}" if visit.till_discount else f"holder:{visit.holder}"
        return Expected("capped" if amount < discount else "approved", None, amount, payee)

    def cancel(self, checkin_id: str) -> int:
        """The provider cancels: an approved claim is reversed. Returns the amount reversed."""
        result = self.outcomes.get(checkin_id)
        if result is None or result.outcome == "rejected" or result.amount_cents == 0:
            return 0
        self.outcomes[checkin_id] = Expected(result.outcome, result.reason, 0, result.payee)
        visit = self.visits[checkin_id]
        day = visit.occurred_at.astimezone(BRUSSELS).date()
        self.used[(visit.holder, day.year)] -= result.amount_cents
        self.taken.discard((visit.holder, visit.provider, visit.activity, day))
        return result.amount_cents

    def payable_by_payee(self) -> dict[str, int]:
        owed: dict[str, int] = defaultdict(int)
        for result in self.outcomes.values():
            if result.payee is not None and result.amount_cents > 0:
                owed[result.payee] += result.amount_cents
        return dict(owed)

    def expense_by_group(self) -> dict[str, int]:
        spent: dict[str, int] = defaultdict(int)
        for checkin_id, result in self.outcomes.items():
            if result.amount_cents > 0:
                spent[self.visits[checkin_id].target_group] += result.amount_cents
        return dict(spent)


def late(now: datetime, minutes_ago: int) -> datetime:
    return now - timedelta(minutes=minutes_ago)
