"""A device is silent when it misses the days it usually works, not its usual closed days:
its routine is learnt from the days it was heard in the 4 weeks before its last heartbeat,
and silence is counted in real hours of those weekdays of the Brussels calendar (a day at a
change of summer time lasts 23 or 25 hours)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import example, given
from hypothesis import strategies as st

from services.notifications.signals import (
    ROUTINE_DAYS,
    Routine,
    device_days_read_back,
    is_silent,
    routine,
    usual_silence,
)

BRUSSELS = ZoneInfo("Europe/Brussels")
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)
EVERY_DAY = frozenset(range(7))


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BRUSSELS)


def heard_on(weekdays: Collection[int], last_day: date, weeks: int = 4) -> list[date]:
    """The days a device working on `weekdays` was heard in the `weeks` up to `last_day`."""
    days = (last_day - timedelta(days=n) for n in range(7 * weeks))
    return [d for d in days if d.weekday() in weekdays]


def silent(last_seen: datetime, now: datetime, days: Iterable[date], hours: int = 24) -> bool:
    return is_silent(last_seen, now, hours, routine(days, last_seen.date()), usual_days=3)


# --- the cases providers know --------------------------------------------------------------


def test_a_pool_closed_on_sunday_is_silent_when_it_misses_monday_not_sunday() -> None:
    # Heard Monday to Saturday for four weeks, the last time on Saturday 28/11 at 18:00.
    days = heard_on({MON, TUE, WED, THU, FRI, SAT}, date(2026, 11, 28))
    assert routine(days, date(2026, 11, 28)).weekdays == EVERY_DAY - {SUN}
    last = local(2026, 11, 28, 18)
    assert not silent(last, local(2026, 11, 29, 18), days)  # what used to raise the alarm
    assert not silent(last, local(2026, 11, 29, 23, 59), days)
    # Saturday's last 6 hours and Monday's first 18 make a day of its usual time.
    assert not silent(last, local(2026, 11, 30, 17, 59), days)
    assert silent(last, local(2026, 11, 30, 18), days)


def test_a_youth_club_open_on_wednesday_and_saturday_misses_its_wednesday() -> None:
    days = heard_on({WED, SAT}, date(2026, 11, 28))
    usual = routine(days, date(2026, 11, 28))
    assert usual == Routine(frozenset({WED, SAT}), 8)
    last = local(2026, 11, 28, 22)
    for closed in (local(2026, 11, 29, 22), local(2026, 12, 1, 23, 59)):
        assert not silent(last, closed, days)
    assert not silent(last, local(2026, 12, 2, 21, 59), days)
    assert silent(last, local(2026, 12, 2, 22), days)


def test_a_monday_to_friday_device_that_misses_monday_is_silent() -> None:
    days = heard_on({MON, TUE, WED, THU, FRI}, date(2026, 11, 27))
    last = local(2026, 11, 27, 17)
    assert not silent(last, local(2026, 11, 28, 17), days)
    assert not silent(last, local(2026, 11, 29, 23), days)
    assert not silent(last, local(2026, 11, 30, 16, 59), days)
    assert silent(last, local(2026, 11, 30, 17), days)


def test_days_at_a_change_of_summer_time_count_as_long_as_they_are() -> None:
    # Every day usual: 12:00 on the Saturday before the change to summer time to 12:00 on
    # the Sunday is 23 hours, not 24.
    days = heard_on(EVERY_DAY, date(2026, 3, 28))
    last = local(2026, 3, 28, 12)
    assert usual_silence(last, local(2026, 3, 29, 12), EVERY_DAY) == timedelta(hours=23)
    assert not silent(last, local(2026, 3, 29, 12, 59), days)
    assert silent(last, local(2026, 3, 29, 13), days)
    # A Sunday market's device, last heard at 23:00 on 18/10: the next Sunday, the change
    # back to winter time, lasts 25 hours, and its 23rd ends at 22:00.
    market = heard_on({SUN}, date(2026, 10, 18))
    last = local(2026, 10, 18, 23)
    assert not silent(last, local(2026, 10, 25, 21, 59), market)
    assert silent(last, local(2026, 10, 25, 22), market)
    # The Mon–Sat pool over the change to summer time: its Sunday does not count at all.
    pool = heard_on(EVERY_DAY - {SUN}, date(2026, 3, 28))
    last = local(2026, 3, 28, 20)
    assert usual_silence(last, local(2026, 3, 30, 20), EVERY_DAY - {SUN}) == timedelta(hours=24)
    assert not silent(last, local(2026, 3, 30, 19, 59), pool)
    assert silent(last, local(2026, 3, 30, 20), pool)


def test_a_device_without_a_routine_is_never_silent() -> None:
    last = local(2026, 11, 27, 17)
    later = last + timedelta(days=60)
    # Heard on two days only.
    assert not silent(last, later, [date(2026, 11, 20), date(2026, 11, 27)])
    # Heard once a week, each time on another weekday: no weekday is usual.
    scattered = [date(2026, 11, 3), date(2026, 11, 12), date(2026, 11, 21), date(2026, 11, 27)]
    assert routine(scattered, date(2026, 11, 27)).weekdays == frozenset()
    assert not silent(last, later, scattered)
    # Heard on many days, but all of them more than 4 weeks before its last heartbeat.
    old = heard_on(EVERY_DAY, date(2026, 10, 29))
    assert routine(old, date(2026, 11, 27)) == Routine(frozenset(), 0)
    assert not silent(last, later, old)


def test_a_usual_day_survives_a_fortnight_closed_and_a_one_off_opening_makes_none() -> None:
    last_day = date(2026, 11, 27)  # a Friday
    weeks = [heard_on({MON, TUE, WED, THU, FRI}, last_day - timedelta(weeks=w), 1) for w in (0, 3)]
    fortnight_off = [d for week in weeks for d in week]
    assert routine(fortnight_off, last_day).weekdays == {MON, TUE, WED, THU, FRI}
    # One open Sunday out of four (an event) does not make Sunday a working day.
    event = [*heard_on({MON, TUE, WED, THU, FRI}, last_day), date(2026, 11, 15)]
    assert routine(event, last_day).weekdays == {MON, TUE, WED, THU, FRI}
    # Two of four do.
    twice = [*event, date(2026, 11, 22)]
    assert routine(twice, last_day).weekdays == {MON, TUE, WED, THU, FRI, SUN}


def test_a_device_younger_than_a_week_is_silent_on_the_days_it_has_not_shown_yet() -> None:
    # Registered on Wednesday, heard Wednesday to Friday: its first weekend is not known to
    # be closed, so a day's silence is news (as it always was).
    days = [date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27)]
    assert routine(days, date(2026, 11, 27)).weekdays == EVERY_DAY
    assert silent(local(2026, 11, 27, 17), local(2026, 11, 28, 17), days)


def test_the_device_days_read_cover_the_routine_and_the_slowest_alarm() -> None:
    assert device_days_read_back(24) == ROUTINE_DAYS + 14 + 1
    # One usual weekday, 23 hours long on the day of the change to summer time: a device
    # silent from its last minute of that Sunday is told 7·⌈24/23⌉ days later at most.
    market = heard_on({SUN}, date(2026, 3, 22))
    last = local(2026, 3, 22, 23, 59)
    assert not silent(last, local(2026, 4, 5, 0, 0), market)  # 29/3 counted 23 hours
    told = local(2026, 4, 5, 1, 0)  # …and 5/4 its 24th
    assert silent(last, told, market)
    assert (told.date() - last.date()).days + ROUTINE_DAYS <= device_days_read_back(24)


# --- properties ------------------------------------------------------------------------------

QUARTER = timedelta(minutes=15)
# Brussels changes its clock on whole UTC hours, and its midnights are whole UTC hours:
# every quarter of an hour lies in one local day.
quarter_hours = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31)).map(
    lambda d: d.replace(minute=d.minute // 15 * 15, second=0, microsecond=0, tzinfo=UTC)
)
weekday_sets = st.frozensets(st.integers(min_value=0, max_value=6))


def reference_silence(last_seen: datetime, now: datetime, weekdays: Collection[int]) -> timedelta:
    """Quarter by quarter of an hour: those that fall on a usual weekday in Brussels."""
    total, moment = timedelta(), last_seen
    while moment < now:
        if moment.astimezone(BRUSSELS).weekday() in weekdays:
            total += QUARTER
        moment += QUARTER
    return total


@given(
    last_seen=quarter_hours,
    quarters=st.integers(min_value=0, max_value=20 * 96),
    weekdays=weekday_sets,
)
# Over the changes to summer and to winter time, and a 25-hour Sunday between usual days.
@example(last_seen=datetime(2026, 3, 28, 11, tzinfo=UTC), quarters=2 * 96, weekdays={SUN})
@example(last_seen=datetime(2026, 10, 24, 11, tzinfo=UTC), quarters=2 * 96, weekdays={SUN})
@example(last_seen=datetime(2026, 10, 24, 21, tzinfo=UTC), quarters=3 * 96, weekdays={SAT, MON})
def test_silence_counts_the_real_time_on_usual_weekdays_in_brussels(
    last_seen: datetime, quarters: int, weekdays: Collection[int]
) -> None:
    now = last_seen + quarters * QUARTER
    counted = usual_silence(last_seen, now, weekdays)
    assert counted == reference_silence(last_seen, now, weekdays)
    assert timedelta() <= counted <= now - last_seen
    if weekdays == EVERY_DAY:
        assert counted == now - last_seen
    assert usual_silence(last_seen, now + QUARTER, weekdays) >= counted


@given(
    last_seen=quarter_hours,
    quarters=st.integers(min_value=0, max_value=20 * 96),
    weekdays=weekday_sets,
    hours=st.integers(min_value=1, max_value=96),
    days_heard=st.integers(min_value=0, max_value=ROUTINE_DAYS),
)
def test_a_device_is_silent_once_it_missed_enough_of_its_usual_time(
    last_seen: datetime, quarters: int, weekdays: frozenset[int], hours: int, days_heard: int
) -> None:
    now = last_seen + quarters * QUARTER
    decided = is_silent(last_seen, now, hours, Routine(weekdays, days_heard), usual_days=3)
    missed = reference_silence(last_seen, now, weekdays)
    assert decided == (days_heard >= 3 and missed >= timedelta(hours=hours))
    if weekdays == EVERY_DAY and days_heard >= 3:
        # A device that works every day is judged as it always was.
        assert decided == (now - last_seen >= timedelta(hours=hours))


@st.composite
def histories(draw: st.DrawFn) -> tuple[frozenset[int], date, list[date]]:
    """A device working on some weekdays, heard on each of them in at least 2 of the 4
    weeks up to its last day, and on other days outside those 4 weeks (forgotten)."""
    weekdays = draw(st.frozensets(st.integers(min_value=0, max_value=6), min_size=1))
    last_day = draw(st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31)))
    window = [last_day - timedelta(days=n) for n in range(ROUTINE_DAYS)]
    days = []
    for weekday in weekdays:
        occurrences = [d for d in window if d.weekday() == weekday]
        days += draw(st.lists(st.sampled_from(occurrences), min_size=2, max_size=4, unique=True))
    outside = st.integers(min_value=1, max_value=60)
    days += [last_day + timedelta(days=n) for n in draw(st.lists(outside, max_size=5))]
    days += [last_day - timedelta(days=ROUTINE_DAYS - 1 + n) for n in draw(st.lists(outside))]
    return weekdays, last_day, draw(st.permutations(days))


@given(histories())
def test_the_routine_is_the_weekdays_heard_in_half_of_the_last_four_weeks(
    history: tuple[frozenset[int], date, list[date]],
) -> None:
    weekdays, last_day, days = history
    learnt = routine(days, last_day)
    assert learnt.weekdays == weekdays
    first_day = last_day - timedelta(days=ROUTINE_DAYS - 1)
    assert learnt.days_heard == len({d for d in days if first_day <= d <= last_day})
    # Heard twice on the same day is heard once; the order does not matter.
    assert routine([*days, *days], last_day) == routine(sorted(days), last_day) == learnt
