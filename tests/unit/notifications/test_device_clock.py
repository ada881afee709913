"""A device's provider hears once per episode that its clock is off: an episode begins with
a heartbeat saying the clock is off by more than the threshold, and ends only with one
saying it is right again (within half of it). Heartbeats count in the order they were
sent, by their reference time (signed sent_at less signed offset): a copy or a late one
changes nothing. And what the provider reads."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from services.notifications.messages import (
    CLOCK_CONSEQUENCE,
    OFFSET_BOUND_MS,
    Language,
    clock_offset_words,
    render,
)
from services.notifications.settings import NotificationsSettings
from services.notifications.signals import ClockWatch, judge_clock, reference_time

LIMIT = timedelta(seconds=120)
LIMIT_MS = 120_000
START = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Beat:
    real: datetime  # when it was sent, by the clock the device measures against
    offset_ms: int | None

    @property
    def sent_at(self) -> datetime:
        return self.real + timedelta(milliseconds=self.offset_ms or 0)


def judge(watch: ClockWatch, beat: Beat) -> tuple[ClockWatch, bool]:
    judged = judge_clock(watch, beat.sent_at, beat.offset_ms, LIMIT)
    return judged.watch, judged.began


NOTHING_YET = ClockWatch()


def run(beats: list[Beat], watch: ClockWatch = NOTHING_YET) -> tuple[ClockWatch, int]:
    """Judge heartbeats in the order given: what is kept, and how many episodes began."""
    told = 0
    for beat in beats:
        watch, began = judge(watch, beat)
        told += began
    return watch, told


def episodes(beats: list[Beat]) -> int:
    """The model: in the order sent, an episode begins at an offset beyond the limit while
    none is in progress, and ends at one within half of it."""
    count, off = 0, False
    for b in sorted(beats, key=lambda b: b.real):
        if b.offset_ms is None:
            continue
        if abs(b.offset_ms) > LIMIT_MS and not off:
            count, off = count + 1, True
        elif 2 * abs(b.offset_ms) <= LIMIT_MS:
            off = False
    return count


# Offsets around the interesting values: right, the hysteresis band, off, far off, unknown.
offsets = st.one_of(
    st.none(),
    st.integers(-2 * LIMIT_MS, 2 * LIMIT_MS),
    st.sampled_from([0, LIMIT_MS // 2, LIMIT_MS, LIMIT_MS + 1, -LIMIT_MS - 1, 72 * 60_000]),
    st.integers(-OFFSET_BOUND_MS, OFFSET_BOUND_MS),
)


@st.composite
def heartbeats(draw: st.DrawFn, min_size: int = 0) -> list[Beat]:
    """A device's heartbeats in the order sent, at least a second apart."""
    gaps = draw(st.lists(st.integers(1_000, 3_600_000), min_size=min_size, max_size=25))
    beats, at = [], START
    for gap in gaps:
        at += timedelta(milliseconds=gap)
        beats.append(Beat(at, draw(offsets)))
    return beats


@given(heartbeats())
def test_in_the_order_sent_every_episode_is_told_once(beats: list[Beat]) -> None:
    watch, told = run(beats)
    assert told == episodes(beats)
    judged = [b for b in beats if b.offset_ms is not None]
    assert watch.judged_at == (judged[-1].real if judged else None)


@given(heartbeats(min_size=1), st.data())
def test_copies_and_late_heartbeats_never_tell_more_than_the_episodes(
    beats: list[Beat], data: st.DataObject
) -> None:
    """Any order of arrival, any heartbeat received any number of times: never more
    notices than episodes, and the latest heartbeat sent decides what is kept."""
    arrivals = data.draw(
        st.lists(st.sampled_from(beats), min_size=len(beats), max_size=3 * len(beats)).map(
            lambda extra: [*beats, *extra]
        )
    )
    shuffled = data.draw(st.permutations(arrivals))
    watch, told = run(shuffled)
    assert told <= episodes(beats)
    in_order, _ = run(beats)
    if in_order.judged_at is not None:
        assert watch.judged_at == in_order.judged_at


@given(heartbeats(), st.data())
def test_a_copy_of_any_heartbeat_changes_nothing(beats: list[Beat], data: st.DataObject) -> None:
    watch, _ = run(beats)
    if beats:
        copy = data.draw(st.sampled_from(beats))
        assert judge(watch, copy) == (watch, False)


@given(heartbeats(), st.data())
def test_two_notices_have_a_clock_right_again_between_them(
    beats: list[Beat], data: st.DataObject
) -> None:
    arrivals = data.draw(st.permutations(beats))
    watch, right_since_told, told_before = ClockWatch(), True, False
    for beat in arrivals:
        watch, began = judge(watch, beat)
        if began:
            assert beat.offset_ms is not None and abs(beat.offset_ms) > LIMIT_MS
            assert right_since_told or not told_before
            right_since_told, told_before = False, True
        elif watch.off_since is None and watch.judged_at == beat.real:
            right_since_told = True


@given(st.lists(st.integers(1_000, 3_600_000), max_size=25), st.data())
def test_a_clock_within_the_threshold_is_never_told(gaps: list[int], data: st.DataObject) -> None:
    at, watch = START, ClockWatch()
    for gap in gaps:
        at += timedelta(milliseconds=gap)
        offset = data.draw(st.one_of(st.none(), st.integers(-LIMIT_MS, LIMIT_MS)))
        watch, began = judge(watch, Beat(at, offset))
        assert not began
        assert watch.off_since is None


def test_a_device_twenty_minutes_ahead_set_right_and_off_again() -> None:
    ahead = 20 * 60_000
    beats = [Beat(START + timedelta(minutes=m), ahead) for m in range(5)]
    watch, told = run(beats)
    assert told == 1
    assert watch.off_since == START
    # Set right: its heartbeats are dated before its last wrong one (sent_at), yet sent
    # after it (reference time). They end the episode at once.
    right = Beat(START + timedelta(minutes=6), 300)
    assert right.sent_at < beats[-1].sent_at
    watch, began = judge(watch, right)
    assert (began, watch.off_since) == (False, None)
    # Off again: a new episode.
    again = Beat(START + timedelta(minutes=7), -ahead)
    watch, began = judge(watch, again)
    assert began and watch.off_since == again.real


def test_the_band_between_half_and_the_threshold_neither_begins_nor_ends() -> None:
    watch, told = run([Beat(START, LIMIT_MS)])  # exactly the threshold: not off
    assert (told, watch.off_since) == (0, None)
    watch, told = run([Beat(START + timedelta(seconds=1), LIMIT_MS + 1)], watch)
    assert told == 1
    # Drifting across the threshold, measured to a second: no alarm at every other beat.
    wobble = [LIMIT_MS - 500, LIMIT_MS + 700, LIMIT_MS // 2 + 1, LIMIT_MS + 1]
    beats = [Beat(START + timedelta(minutes=1 + i), o) for i, o in enumerate(wobble)]
    watch, told = run(beats, watch)
    assert told == 0 and watch.off_since is not None
    watch, told = run([Beat(START + timedelta(hours=1), LIMIT_MS // 2)], watch)
    assert (told, watch.off_since) == (0, None)


def test_a_heartbeat_without_an_offset_says_nothing_of_the_clock() -> None:
    watch = ClockWatch(START, START)
    assert judge(watch, Beat(START + timedelta(hours=1), None)) == (watch, False)


def test_a_reference_time_no_datetime_can_hold_is_not_judged() -> None:
    early = datetime(1, 1, 1, tzinfo=UTC)
    assert reference_time(early, OFFSET_BOUND_MS) is None
    judged = judge_clock(ClockWatch(), early, OFFSET_BOUND_MS, LIMIT)
    assert judged.watch == ClockWatch() and not judged.began


def test_the_threshold_setting() -> None:
    fields = NotificationsSettings.model_fields["device_clock_off_s"]
    assert fields.default == 120


def test_how_far_off_in_plain_words() -> None:
    assert clock_offset_words(72 * 60_000, "nl") == "1 u 12 min voor"
    assert clock_offset_words(-72 * 60_000, "en") == "1 h 12 min behind"
    assert clock_offset_words(20 * 60_000 + 999, "nl") == "20 min voor"
    assert clock_offset_words(125_000, "en") == "2 min 5 s ahead"
    assert clock_offset_words(-(3 * 86_400 + 4 * 3_600) * 1000, "nl") == "3 dagen 4 u achter"
    assert clock_offset_words((86_400 + 300) * 1000, "en") == "1 day ahead"  # 0 h: stop
    assert clock_offset_words(-(400 * 86_400) * 1000, "nl") == "1 jaar 35 dagen achter"
    # A kiosk at 1970 reports the bound: it is at least that far behind.
    assert clock_offset_words(-OFFSET_BOUND_MS, "nl") == "meer dan 31 jaar achter"
    assert clock_offset_words(OFFSET_BOUND_MS, "en") == "more than 31 years ahead"


def message(language: str, offset_ms: int) -> tuple[str, str]:
    lang: Language = "en" if language == "en" else "nl"
    m = render(
        "device_clock_off",
        lang,
        "Cultuurcentrum Zwaneberg",
        device="0192ab34",
        offset=clock_offset_words(offset_ms, lang),
        consequence=CLOCK_CONSEQUENCE[lang][offset_ms > 0],
    )
    return m.subject, m.body


def test_the_provider_reads_which_device_how_far_off_what_it_costs_and_what_to_do() -> None:
    subject, body = message("nl", 72 * 60_000)
    assert subject == "Vrijetijdspas: de klok van toestel 0192ab34 loopt 1 u 12 min voor"
    assert body.startswith("Beste Cultuurcentrum Zwaneberg,\n\n")
    assert "De klok van toestel 0192ab34 loopt 1 u 12 min voor." in body
    assert "kunnen daardoor geweigerd worden, omdat ze in de toekomst lijken te liggen" in body
    assert "automatisch instellen (via internet, NTP)" in body
    assert "vtp device heartbeat" in body
    _, behind = message("nl", -3 * 3_600_000)
    assert "loopt 3 u achter." in behind
    assert "op de verkeerde dag geboekt" in behind

    subject, body = message("en", -72 * 60_000)
    assert subject == "Leisure card: the clock of device 0192ab34 is 1 h 12 min behind"
    assert "may therefore be booked on the wrong day" in body
    assert "set its time automatically (over the internet, NTP)" in body
    _, ahead = message("en", 20 * 60_000)
    assert "may therefore be refused, as they seem to lie in the future" in ahead


@given(st.integers(-OFFSET_BOUND_MS, OFFSET_BOUND_MS).filter(lambda o: abs(o) > 1000))
def test_the_message_names_no_card_and_says_the_way_it_is_off(offset_ms: int) -> None:
    for language in ("nl", "en"):
        subject, body = message(language, offset_ms)
        assert not re.search(r"\d{13}", subject + body)
        way = {"nl": ("voor", "achter"), "en": ("ahead", "behind")}[language]
        assert subject.endswith(way[0] if offset_ms > 0 else way[1])
