"""A plain reference implementation of the refund policy, written from the rules in the
issue and DOMAIN.md, sharing no code with services/claims (only the event schemas).

It replays check-ins and cancellations in delivery order and says what must have become of
each check-in, what every person's budget use is and what every ledger account holds.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from shared.events.checkins import CheckInCancelled, CheckInRecorded

BRUSSELS = ZoneInfo("Europe/Brussels")


@dataclass(frozen=True)
class RefGrant:
    target_group: str
    eligible_from: date
    eligible_until: date
    grace_days: int


@dataclass(frozen=True)
class RefCard:
    card_id: uuid.UUID
    holder_id: uuid.UUID
    target_group: str
    eligible_from: date
    eligible_until: date
    grace_days: int
    resident: bool
    status_changes: tuple[tuple[datetime, str], ...] = ()
    # Every grant of the holder, when an EligibilityChanged listed them; without it, the
    # one the card was issued with is the holder's only grant.
    grants: tuple[RefGrant, ...] = ()

    def grant_on(self, day: date) -> RefGrant | None:
        """The grant of that day, grace days included. A renewal that has started beats a
        grant that is only in its grace days; otherwise the one that started last."""
        held = self.grants or (
            RefGrant(self.target_group, self.eligible_from, self.eligible_until, self.grace_days),
        )
        valid = [
            g for g in held if g.eligible_from <= day <= g.eligible_until + timedelta(g.grace_days)
        ]
        in_period = [g for g in valid if day <= g.eligible_until]
        candidates = sorted(in_period or valid, key=lambda g: g.eligible_from)
        return candidates[-1] if candidates else None


@dataclass(frozen=True)
class RefProvider:
    partner: bool
    till_discount: bool


@dataclass(frozen=True)
class Outcome:
    outcome: str  # approved | capped | rejected | unauthenticated
    reason: str | None
    amount_cents: int


@dataclass
class _Claim:
    checkin: CheckInRecorded
    holder_id: uuid.UUID
    period: int
    amount: int
    postings: list[tuple[str, str, int]]  # (debit, credit, cents)
    reversed: bool = False


def _round_half_up(cents: int, basis_points: int) -> int:
    return (cents * basis_points + 5000) // 10000


def _local_day(at: datetime) -> date:
    return at.astimezone(BRUSSELS).date()


@dataclass
class ReferencePolicy:
    policy: dict[str, Any]
    cards: dict[str, RefCard]  # by card number
    providers: dict[uuid.UUID, RefProvider]
    device_providers: dict[uuid.UUID, uuid.UUID]
    now: datetime
    outcomes: dict[uuid.UUID, Outcome] = field(default_factory=dict)
    claims: dict[uuid.UUID, _Claim] = field(default_factory=dict)
    pending_cancellations: dict[uuid.UUID, set[uuid.UUID]] = field(default_factory=dict)
    used: dict[tuple[uuid.UUID, int], int] = field(default_factory=dict)
    nonces: set[tuple[uuid.UUID, str]] = field(default_factory=set)
    # Authenticated check-ins whose card is not known: they wait for it, no nonce used.
    parked: dict[uuid.UUID, CheckInRecorded] = field(default_factory=dict)

    # -- the policy, read plainly ------------------------------------------------------
    def _version(self, day: date) -> dict[str, Any] | None:
        found = None
        for v in self.policy["versions"]:
            if v["effective_from"] <= day:
                found = v
        return found

    def _period(self, day: date) -> int:
        if self.policy.get("budget_year", "calendar") == "calendar":
            return day.year
        month, dom = (int(x) for x in self.policy["program_year_start"].split("-"))
        return day.year if (day.month, day.day) >= (month, dom) else day.year - 1

    @staticmethod
    def _window(period: str, day: date) -> tuple[date, date]:
        if period == "day":
            return day, day
        if period == "week":
            monday = day - timedelta(days=day.weekday())
            return monday, monday + timedelta(days=6)
        first = day.replace(day=1)
        nxt = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        return first, nxt - timedelta(days=1)

    def _limits(self, version: dict[str, Any]) -> list[dict[str, Any]]:
        limits = list(version.get("frequency_limits", []))
        once = {"per": "activity", "period": "day", "max_checkins": 1}
        if version.get("once_per_activity_per_day", True) and once not in limits:
            limits.insert(0, once)
        return limits

    def _frequency_reason(
        self, version: dict[str, Any], c: CheckInRecorded, holder: uuid.UUID
    ) -> str | None:
        day = _local_day(c.occurred_at)
        live = [k.checkin for k in self.claims.values() if k.holder_id == holder and not k.reversed]
        for limit in self._limits(version):
            start, end = self._window(limit["period"], day)
            same = 0
            for other in live:
                other_day = _local_day(other.occurred_at)
                if not start <= other_day <= end:
                    continue
                scope = limit["per"]
                if (
                    scope == "any"
                    or (
                        scope == "activity"
                        and (other.provider_id, other.activity.id) == (c.provider_id, c.activity.id)
                    )
                    or (scope == "provider" and other.provider_id == c.provider_id)
                    or (scope == "category" and other.activity.category == c.activity.category)
                ):
                    same += 1
            if same >= limit["max_checkins"]:
                if limit["per"] == "activity" and limit["period"] == "day":
                    return "already_today"
                return "frequency_limit"
        return None

    def _split(self, version: dict[str, Any], total: int, resident: bool) -> list[tuple[str, int]]:
        left = total
        shares: dict[str, int] = {}
        for line in version.get("distribution", []):
            applies = line.get("applies_to", "all")
            if applies == "residents" and not resident:
                continue
            if applies == "non_residents" and resident:
                continue
            if left <= 0:
                continue
            if line["basis"] == "fixed":
                part = line["amount_cents"]
            elif line["basis"] == "percent_of_total":
                part = _round_half_up(total, line["basis_points"])
            else:
                part = _round_half_up(left, line["basis_points"])
            part = min(part, left)
            if part > 0:
                shares[line["payer"]] = shares.get(line["payer"], 0) + part
                left -= part
        out = list(shares.items())
        if left > 0:
            out.append(("municipality", left))
        return out

    # -- events ------------------------------------------------------------------------
    def checkin(self, c: CheckInRecorded, *, signature_ok: bool) -> None:
        if (
            c.checkin_id in self.outcomes
            and self.outcomes[c.checkin_id].outcome != "unauthenticated"
        ):
            return  # a duplicate changes nothing
        if not signature_ok or c.device_id not in self.device_providers:
            self.outcomes.setdefault(c.checkin_id, Outcome("unauthenticated", "bad_signature", 0))
            return
        if (c.device_id, c.nonce) in self.nonces:
            self.outcomes.setdefault(c.checkin_id, Outcome("unauthenticated", "replayed", 0))
            return
        if (
            c.card_number not in self.cards
            and c.provider_id not in self.pending_cancellations.get(c.checkin_id, set())
            and self._timing(c) is None
        ):
            # Its card may still come (its own topic): only it decides the outcome.
            self.parked[c.checkin_id] = c
            return
        self.nonces.add((c.device_id, c.nonce))
        self.outcomes[c.checkin_id] = self._judge(c)

    def card_never_came(self) -> None:
        """The wait for the cards of the parked check-ins is over: judged as they are."""
        for c in self.parked.values():
            if c.checkin_id in self.outcomes and self.outcomes[c.checkin_id].outcome != (
                "unauthenticated"
            ):
                continue  # judged meanwhile (sent again after a cancellation)
            self.nonces.add((c.device_id, c.nonce))
            self.outcomes[c.checkin_id] = self._judge(c)
        self.parked.clear()

    def _reject(self, reason: str) -> Outcome:
        return Outcome("rejected", reason, 0)

    def _timing(self, c: CheckInRecorded) -> str | None:
        day = _local_day(c.occurred_at)
        timing = self._version(day) or self.policy["versions"][0]
        if c.occurred_at > self.now + timedelta(seconds=timing["future_tolerance_seconds"]):
            return "in_the_future"
        if c.occurred_at < self.now - timedelta(days=timing["checkin_window_days"]):
            return "out_of_window"
        return None

    def _judge(self, c: CheckInRecorded) -> Outcome:
        # Parked per provider: only the check-in's own provider's counts, and all go.
        if c.provider_id in self.pending_cancellations.pop(c.checkin_id, set()):
            return self._reject("checkin_cancelled")
        day = _local_day(c.occurred_at)
        timing = self._timing(c)
        if timing is not None:
            return self._reject(timing)
        card = self.cards.get(c.card_number)
        if card is None:
            return self._reject("unknown_card")
        status = "active"
        for at, value in card.status_changes:
            if at <= c.occurred_at:
                status = value
        if status != "active":
            return self._reject(f"card_{status}")
        grant = card.grant_on(day)
        if grant is None:
            return self._reject("not_eligible")
        provider = self.providers.get(c.provider_id)
        if provider is None or not provider.partner:
            return self._reject("provider_not_partner")
        version = self._version(day)
        if version is None:
            return self._reject("not_eligible")
        if c.activity.category.value not in version["eligible_categories"]:
            return self._reject("category_not_eligible")
        frequency = self._frequency_reason(version, c, card.holder_id)
        if frequency is not None:
            return self._reject(frequency)
        discount = _round_half_up(
            c.price_cents, version["discount_basis_points"].get(grant.target_group, 0)
        )
        if discount <= 0:
            return self._reject("nothing_to_refund")
        period = self._period(day)
        left = version["yearly_budget_cents"] - self.used.get((card.holder_id, period), 0)
        if left <= 0:
            return self._reject("budget_exhausted")
        amount = min(discount, version["cap_per_checkin_cents"], left)
        self.used[(card.holder_id, period)] = self.used.get((card.holder_id, period), 0) + amount
        payable = (
            f"payable:provider:{c.provider_id}"
            if provider.till_discount
            else f"payable:holder:{card.holder_id}"
        )
        postings = []
        for payer, cents in self._split(version, amount, card.resident):
            if payer == "municipality":
                debit = f"expense:discount:{grant.target_group}"
            elif payer == "provider":
                debit = f"receivable:provider:{c.provider_id}"
            else:
                debit = f"receivable:{payer}"
            postings.append((debit, payable, cents))
        self.claims[c.checkin_id] = _Claim(c, card.holder_id, period, amount, postings)
        return Outcome("capped" if amount < discount else "approved", None, amount)

    def cancel(self, e: CheckInCancelled) -> None:
        claim = self.claims.get(e.checkin_id)
        if (
            e.checkin_id not in self.outcomes
            or self.outcomes[e.checkin_id].outcome == "unauthenticated"
        ):
            self.pending_cancellations.setdefault(e.checkin_id, set()).add(e.provider_id)
            return
        if claim is None or claim.reversed or claim.checkin.provider_id != e.provider_id:
            return
        claim.reversed = True
        self.used[(claim.holder_id, claim.period)] -= claim.amount

    # -- what must be in the ledger ----------------------------------------------------
    def balances(self) -> dict[str, int]:
        """Per account, debits positive, after every claim and reversal."""
        out: dict[str, int] = {}
        for claim in self.claims.values():
            if claim.reversed:
                continue  # a reversal mirrors every posting: the net is nothing
            for debit, credit, cents in claim.postings:
                out[debit] = out.get(debit, 0) + cents
                out[credit] = out.get(credit, 0) - cents
        return {a: b for a, b in out.items() if b != 0}

    def reversed_ids(self) -> set[uuid.UUID]:
        return {k for k, c in self.claims.items() if c.reversed}
