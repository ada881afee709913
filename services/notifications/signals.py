"""Signals derived from events: when a card counts as unused, a device as silent (and
whether its heartbeat may be believed), its clock as off, and how long to wait before
retrying. Pure functions. (Whether a budget line crossed a threshold is the claims
service's to decide: it keeps the budgets and the ledger.)"""

from __future__ import annotations

import math
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from services.notifications.messages import BRUSSELS, local_day
from shared.checkin_signature import canonical_heartbeat, verify
from shared.deadletter import DeadLetterReason
from shared.events.checkins import DeviceHeartbeat

_KEY_NAMESPACE = uuid.UUID("0b5f3f6e-8f63-4a53-9d1c-5a0c2e7f4e21")


def notification_key(*parts: object) -> uuid.UUID:
    """A stable id for a notification not caused by one event (a scan, a digest, a
    threshold): the same facts give the same key, so a rerun cannot notify twice."""
    return uuid.uuid5(_KEY_NAMESPACE, "/".join(str(p) for p in parts))


def is_unused(last_use: datetime, now: datetime, after_days: int) -> bool:
    return now - last_use >= timedelta(days=after_days)


def ends_soon(eligible_until: date, today: date, warning_days: int) -> bool:
    return today <= eligible_until <= today + timedelta(days=warning_days)


# A device's routine is learnt from the days it was heard (device_days: Brussels calendar
# days) in the four weeks up to its last heartbeat. Four weeks: a month's routine, every
# weekday seen four times, and short enough to follow a new timetable within weeks.
ROUTINE_WEEKS = 4
ROUTINE_DAYS = 7 * ROUTINE_WEEKS


@dataclass(frozen=True)
class Routine:
    """When a device usually works: the weekdays (0 = Monday, as date.weekday()) and on
    how many days of its history it was heard at all."""

    weekdays: frozenset[int]
    days_heard: int


def routine(heard: Iterable[date], last_day: date) -> Routine:
    """The routine of a device heard on the days `heard`, `last_day` being the (Brussels)
    day of its last heartbeat. Only the ROUTINE_DAYS up to `last_day` count, and within
    them only the days since the first it was heard (a new device has no past to judge).

    A weekday is usual when the device was heard on at least half of its occurrences: 2 of
    the last 4 weeks. A one-off opening (an event on a Sunday, 1 of 4) makes no routine,
    and a usual day survives two closed weeks (a public holiday, the autumn or spring
    school holidays, a week the device itself was down): three of four would drop the
    youth club's Wednesday after a fortnight's holiday, and its device failing in the
    first week back would go unnoticed. A weekday not seen yet (a device younger than a
    week) counts as usual: until we know better, silence on it is news."""
    first_day = last_day - timedelta(days=ROUTINE_DAYS - 1)
    days = {d for d in heard if first_day <= d <= last_day}
    if not days:
        return Routine(frozenset(), 0)
    since = min(days)
    span = (last_day - since).days + 1
    usual = set()
    for weekday in range(7):
        # Occurrences of the weekday in since..last_day.
        occurrences = (span - (weekday - since.weekday()) % 7 + 6) // 7
        heard_on = sum(1 for d in days if d.weekday() == weekday)
        if 2 * heard_on >= occurrences:
            usual.add(weekday)
    return Routine(frozenset(usual), len(days))


def usual_silence(
    last_seen: datetime, now: datetime, weekdays: Collection[int], enough: timedelta | None = None
) -> timedelta:
    """How much of the time from `last_seen` to `now` fell on the weekdays `weekdays` of
    the Brussels calendar: real elapsed time, so a usual day of 23 or 25 hours (the
    changes to and from summer time) counts 23 or 25 hours. With `enough`, counting may
    stop once that much is reached."""
    total = timedelta()
    if not weekdays:
        return total
    start, end = last_seen.astimezone(UTC), now.astimezone(UTC)
    day = local_day(start)
    while True:
        opens = _utc_midnight(day)
        if opens >= end:
            return total
        if day.weekday() in weekdays:
            closes = _utc_midnight(day + timedelta(days=1))
            total += max(timedelta(), min(end, closes) - max(start, opens))
            if enough is not None and total >= enough:
                return total
        day += timedelta(days=1)


def _utc_midnight(day: date) -> datetime:
    """The moment a Brussels calendar day begins, in UTC: aware datetimes sharing one
    tzinfo subtract by wall clock, which would make every day 24 hours long."""
    return datetime.combine(day, time(), BRUSSELS).astimezone(UTC)


def is_silent(
    last_seen: datetime, now: datetime, silent_hours: int, usual: Routine, usual_days: int
) -> bool:
    """Silent for `silent_hours` of the days it usually works, while it was heard on at
    least `usual_days` days of its history: an alarm for a device that stopped, not for one
    that is rarely used, nor for one switched off on its usual closed days (a pool's till
    on Sunday, a youth club's on every day but Wednesday and Saturday)."""
    if usual.days_heard < usual_days or not usual.weekdays:
        return False
    enough = timedelta(hours=silent_hours)
    return usual_silence(last_seen, now, usual.weekdays, enough) >= enough


def device_days_read_back(silent_hours: int) -> int:
    """How many days before the moment of its alarm the silent-device check may still read
    a device's device_days: its routine's ROUTINE_DAYS, and the longest it can take to miss
    `silent_hours` of its usual days. A device with one usual weekday misses at least 23
    hours (a day at the change to summer time) a week, so it is told at the latest
    7·⌈silent_hours / 23⌉ days after its last heartbeat's day; one more for the day
    boundaries."""
    return ROUTINE_DAYS + 7 * math.ceil(silent_hours / 23) + 1


@dataclass(frozen=True)
class ClockWatch:
    """What a device's heartbeats said of its clock (judge_clock), each heartbeat placed at
    its reference time: its signed sent_at less its signed clock_offset_ms, the moment it
    was sent by the clock it measured against."""

    judged_at: datetime | None = None  # the latest reference time judged, if any
    off_since: datetime | None = None  # that of the heartbeat that began an episode, if one


@dataclass(frozen=True)
class KnownDevice:
    """A device as the cards service's events (and its accepted heartbeats) describe it."""

    provider_id: uuid.UUID
    public_key: str | None  # None: known from its revocation only, or from before keys were kept
    revoked: bool
    reported_at: datetime | None  # the signed sent_at of its latest accepted heartbeat
    clock: ClockWatch = ClockWatch()


@dataclass(frozen=True)
class HeartbeatRefusal:
    reason: DeadLetterReason
    detail: str


def signed_millis(value: datetime) -> datetime:
    """A time as far as a signature covers it (milliseconds, shared/checkin_signature.py):
    finer digits can be changed without breaking the signature, so they must not count."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


# How close to our clock a device's signed sent_at must be for a heartbeat that is not
# newer than the last to count as fresh (a device whose clock was set right) and not a copy;
# or its sent_at less its signed clock offset (a device whose clock fell behind).
FRESH_HEARTBEAT = timedelta(minutes=10)


def heartbeat_refusal(
    h: DeviceHeartbeat, device: KnownDevice | None, received_at: datetime
) -> HeartbeatRefusal | None:
    """Why a heartbeat is not to be believed; None when it is. The checks, their order and
    their reasons are those claims applies to a check-in (services/claims/authentication.py,
    docs/device-protocol.md section 8). A heartbeat whose signed sent_at is not later than
    that of the device's latest accepted one is a replay (a copy of a genuine heartbeat
    must not keep a dead device alive), or a device whose clock was set back."""
    if device is None or (device.public_key is None and not device.revoked):
        return HeartbeatRefusal(
            DeadLetterReason.UNKNOWN_DEVICE, "device is not registered (no public key known)"
        )
    if device.provider_id != h.provider_id:
        return HeartbeatRefusal(
            DeadLetterReason.UNKNOWN_DEVICE, "device is registered to another provider"
        )
    if device.revoked or device.public_key is None:
        return HeartbeatRefusal(DeadLetterReason.DEVICE_REVOKED, "device was revoked")
    if not verify(device.public_key, canonical_heartbeat(h), h.signature):
        return HeartbeatRefusal(
            DeadLetterReason.BAD_SIGNATURE, "signature does not match the device's key"
        )
    sent_at = signed_millis(h.sent_at)
    if (
        device.reported_at is not None
        and sent_at <= device.reported_at
        # A kiosk's most common fault is a wrong clock: once set right, its heartbeats are
        # "older" than those it sent while it ran ahead. Sent about now, they are fresh; a
        # copy of an old one is not (and a copy of a recent one buys minutes at most).
        and abs(received_at - sent_at) > FRESH_HEARTBEAT
        # So is one from a clock that was right and fell behind (reset to a firmware's
        # date, a wrong time zone): sent about now by the clock it measured against, as its
        # signed offset says. A copy keeps the offset, and so the moment, it was sent with.
        and not _fresh_by_offset(h, received_at)
    ):
        return HeartbeatRefusal(
            DeadLetterReason.REPLAYED,
            f"sent_at is not after that of the device's latest heartbeat"
            f" ({device.reported_at.isoformat()}): not counted as a sign of life",
        )
    return None


@dataclass(frozen=True)
class ClockJudgement:
    watch: ClockWatch  # what to keep
    began: bool  # an episode began: tell the provider (once: the next begins only after
    # a heartbeat that says the clock is right again)


def reference_time(sent_at: datetime, offset_ms: int) -> datetime | None:
    """When a heartbeat was sent by the clock its device measured against: sent_at as
    signed, less the offset it reports. None when no datetime can hold it."""
    try:
        return signed_millis(sent_at) - timedelta(milliseconds=offset_ms)
    except OverflowError:
        return None


def judge_clock(
    watch: ClockWatch, sent_at: datetime, offset_ms: int | None, off_after: timedelta
) -> ClockJudgement:
    """The clock of a device whose heartbeat (accepted: heartbeat_refusal) says its offset
    is `offset_ms`. Off when that is more than `off_after` either way; an episode begins
    with the first heartbeat that says so, and ends only with one that says it is right
    again, within half of `off_after`: a clock drifting across the threshold, measured to a
    second or so, does not raise an alarm at every other heartbeat.

    Heartbeats are judged in the order they were sent, by their reference time: a copy or
    a late heartbeat, sent before the last one judged, changes nothing. Not by sent_at
    alone, which is the very clock that is off: a device that ran 20 minutes ahead and was
    set right sends heartbeats dated before its last wrong one, and would stay "off" for
    20 minutes more (a year, for one that thought it was next year). The offset, signed
    with sent_at, places them; a copy keeps its own. A heartbeat without an offset says
    nothing of the clock."""
    if offset_ms is None:
        return ClockJudgement(watch, False)
    at = reference_time(sent_at, offset_ms)
    if at is None or (watch.judged_at is not None and at <= watch.judged_at):
        return ClockJudgement(watch, False)
    off_ms = abs(offset_ms)
    limit_ms = off_after // timedelta(milliseconds=1)
    if off_ms > limit_ms:
        if watch.off_since is None:
            return ClockJudgement(ClockWatch(at, at), True)
        return ClockJudgement(ClockWatch(at, watch.off_since), False)
    if 2 * off_ms <= limit_ms:
        return ClockJudgement(ClockWatch(at, None), False)
    return ClockJudgement(ClockWatch(at, watch.off_since), False)


def _fresh_by_offset(h: DeviceHeartbeat, received_at: datetime) -> bool:
    if h.clock_offset_ms is None:
        return False
    sent = reference_time(h.sent_at, h.clock_offset_ms)
    return sent is not None and abs(received_at - sent) <= FRESH_HEARTBEAT


def retry_delay_s(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff after the `attempt`-th failure (1-based): base, 2·base, 4·base…"""
    return float(min(base_s * 2 ** max(attempt - 1, 0), max_s))


def previous_month(today: date) -> tuple[date, date]:
    last = today.replace(day=1) - timedelta(days=1)
    return last.replace(day=1), last
