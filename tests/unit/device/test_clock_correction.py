"""A device whose clock is wrong still records the time the card holder was there: the
time of a check-in is corrected by the device's last clock measurement against the cards
API, and a scan whose time nothing can make right is refused instead of journaled to be
rejected. An explicit time is never changed."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.events.checkins import Activity, ActivityCategory, DeviceHeartbeat
from shared.ids import uuid7
from tests.support.device_broker import FakeBroker
from vtp.device.client import ClockRefused, DeviceClient
from vtp.device.clock import MAX_OFFSET_MS, measure_clock_offset
from vtp.device.journal import Journal
from vtp.device.scantime import (
    FRESH_FOR,
    LONGEST_WINDOW,
    MEASURE_EVERY,
    TOLERANCE,
    BootAnchor,
    ClockMeasurement,
    ClockRefusal,
    ScanTime,
    correction_notice,
    measurement_due,
    registered_not_before,
    scan_time,
)
from vtp.device.signer import DeviceIdentity

PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# What claims does with occurred_at (services/claims/decisions.py, the default policy).
CLAIMS_FUTURE_TOLERANCE = timedelta(seconds=300)
CLAIMS_WINDOW = timedelta(days=30)
YEAR_MS = 365 * 86_400_000
CARD = "6299001234568"
ACTIVITY = Activity(id="zwembad", category=ActivityCategory.SPORT, name="Zwembad")
BOOT = BootAnchor("boot-1", 1_700_000_000_000)

moments = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)
# A device clock may be anything from a kiosk that believes it is 1970 to years ahead.
device_times = st.datetimes(
    min_value=datetime(1960, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
offsets_ms = st.integers(-60 * YEAR_MS, 10 * YEAR_MS)
anchors = st.one_of(st.none(), st.builds(BootAnchor, st.sampled_from(["a", "b"]), st.integers()))
measurements = st.builds(ClockMeasurement, device_times, offsets_ms, anchors)


# --- the decision, free of I/O --------------------------------------------------------


@PROPERTY
@given(
    server_then=moments,
    offset_ms=offsets_ms,
    age=st.timedeltas(timedelta(seconds=10), FRESH_FOR - timedelta(seconds=10)),
    error_ms=st.integers(-1000, 1000),  # the Date header's whole seconds, the round trip
    drift_ms=st.integers(-5000, 5000),  # a quartz clock in a day, at worst
    anchored=st.booleans(),
)
def test_a_fresh_true_measurement_puts_the_check_in_within_tolerance_of_the_server_clock(
    server_then: datetime,
    offset_ms: int,
    age: timedelta,
    error_ms: int,
    drift_ms: int,
    anchored: bool,
) -> None:
    offset = timedelta(milliseconds=offset_ms)
    boot = BOOT if anchored else None
    last = ClockMeasurement(server_then + offset, offset_ms + error_ms, boot)
    true_now = server_then + age
    drift = timedelta(milliseconds=drift_ms)
    decided = scan_time(true_now + offset + drift, last, boot_now=boot)
    assert isinstance(decided, ScanTime)
    error = abs(decided.occurred_at - true_now)
    assert error <= TOLERANCE + timedelta(milliseconds=abs(error_ms) + abs(drift_ms))
    # …which claims takes as the day the holder was there: neither future nor too old.
    assert true_now - CLAIMS_WINDOW < decided.occurred_at <= true_now + CLAIMS_FUTURE_TOLERANCE
    if abs(offset_ms + error_ms) > TOLERANCE / timedelta(milliseconds=1):
        assert decided.source == "corrected"
        assert decided.corrected_ms == offset_ms + error_ms


@PROPERTY
@given(
    measured_at=moments,
    offset_ms=st.integers(-30_000, 30_000),
    age=st.timedeltas(timedelta(0), FRESH_FOR),
    anchored=st.booleans(),
)
def test_a_clock_within_the_tolerance_is_left_as_it_is(
    measured_at: datetime, offset_ms: int, age: timedelta, anchored: bool
) -> None:
    boot = BOOT if anchored else None
    last = ClockMeasurement(measured_at, offset_ms, boot)
    local_now = measured_at + age
    assert scan_time(local_now, last, boot_now=boot) == ScanTime(local_now, "device")


@PROPERTY
@given(
    local_now=device_times,
    last=st.one_of(st.none(), measurements),
    boot_now=anchors,
    explicit=st.datetimes(timezones=st.just(UTC)),
    not_before=moments,
)
def test_an_explicit_time_is_never_corrected_nor_refused(
    local_now: datetime,
    last: ClockMeasurement | None,
    boot_now: BootAnchor | None,
    explicit: datetime,
    not_before: datetime,
) -> None:
    decided = scan_time(
        local_now, last, explicit=explicit, boot_now=boot_now, not_before=not_before
    )
    assert decided == ScanTime(explicit, "explicit")


@PROPERTY
@given(
    true_now=moments,
    local_now=device_times,
    not_before_ago=st.timedeltas(timedelta(0), timedelta(days=3000)),
    server_then_ago=st.timedeltas(timedelta(0), timedelta(days=3000)),
    offset_ms=offsets_ms,
    measured=st.booleans(),
    anchors_=st.tuples(anchors, anchors),
)
def test_a_scan_is_refused_only_when_every_claims_policy_would_reject_it(
    true_now: datetime,
    local_now: datetime,
    not_before_ago: timedelta,
    server_then_ago: timedelta,
    offset_ms: int,
    measured: bool,
    anchors_: tuple[BootAnchor | None, BootAnchor | None],
) -> None:
    """Whatever the device believes, what it knows of the past is true: its registration
    and the cards API's time at the last measurement both lie before the true now."""
    then_boot, now_boot = anchors_
    server_then = true_now - server_then_ago
    last = (
        ClockMeasurement(server_then + timedelta(milliseconds=offset_ms), offset_ms, then_boot)
        if measured
        else None
    )
    decided = scan_time(local_now, last, boot_now=now_boot, not_before=true_now - not_before_ago)
    if isinstance(decided, ClockRefusal):
        # older than the longest window any policy may set, however late it reaches claims
        assert local_now < true_now - LONGEST_WINDOW
        assert decided.device_time == local_now


@PROPERTY
@given(
    last=st.builds(ClockMeasurement, moments, offsets_ms, st.just(BOOT)),
    how=st.sampled_from(["stale", "set back", "restarted", "clock set"]),
    by=st.timedeltas(timedelta(seconds=3), timedelta(days=400)),
)
def test_a_measurement_that_no_longer_describes_the_clock_corrects_nothing(
    last: ClockMeasurement, how: str, by: timedelta
) -> None:
    local_now, boot_now = last.measured_at + timedelta(minutes=1), BOOT
    if how == "stale":
        local_now = last.measured_at + FRESH_FOR + by
    elif how == "set back":
        local_now = last.measured_at - by
    elif how == "restarted":
        boot_now = BootAnchor("another boot", BOOT.wall_minus_boot_ms)
    else:  # set by NTP or by hand since the measurement, forward or back
        step_ms = int(by / timedelta(milliseconds=1))
        boot_now = BootAnchor(BOOT.boot_id, BOOT.wall_minus_boot_ms + step_ms)
    decided = scan_time(local_now, last, boot_now=boot_now)
    assert isinstance(decided, ClockRefusal) or decided == ScanTime(local_now, "device")


def test_a_kiosk_set_right_after_the_warning_is_not_corrected_twice() -> None:
    """The staff read that the clock is two hours behind and set it: the old offset would
    now push every check-in two hours into the future, rejected for good."""
    measured_at = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    last = ClockMeasurement(measured_at, -2 * 3_600_000, BOOT)
    assert scan_time(measured_at + timedelta(minutes=5), last, boot_now=BOOT) == ScanTime(
        measured_at + timedelta(hours=2, minutes=5), "corrected", -2 * 3_600_000
    )
    set_right = measured_at + timedelta(hours=2, minutes=5)
    stepped = BootAnchor(BOOT.boot_id, BOOT.wall_minus_boot_ms + 2 * 3_600_000)
    assert scan_time(set_right, last, boot_now=stepped) == ScanTime(set_right, "device")


def test_a_clock_at_1970_is_refused_without_a_measurement_and_corrected_with_one() -> None:
    booted = datetime(1970, 1, 1, 0, 2, tzinfo=UTC)
    refused = scan_time(booted, None)
    assert isinstance(refused, ClockRefusal)
    assert refused.message().startswith("de klok van dit toestel staat op 01-01-1970 00:02")
    server = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)
    last = ClockMeasurement(booted, round((booted - server) / timedelta(milliseconds=1)))
    assert scan_time(booted + timedelta(minutes=3), last) == ScanTime(
        server + timedelta(minutes=3), "corrected", last.offset_ms
    )


def test_a_clock_only_months_behind_is_recorded_claims_may_have_a_longer_window() -> None:
    assert scan_time(datetime(2024, 6, 1, tzinfo=UTC), None) == ScanTime(
        datetime(2024, 6, 1, tzinfo=UTC), "device"
    )
    assert isinstance(scan_time(datetime(2023, 12, 1, tzinfo=UTC), None), ClockRefusal)
    # The cards API's time at an old measurement is also a moment known to have passed.
    old = ClockMeasurement(datetime(2026, 1, 1, tzinfo=UTC), 0)
    assert isinstance(scan_time(datetime(2024, 12, 1, tzinfo=UTC), old), ClockRefusal)


def test_the_registration_time_is_read_from_the_device_id() -> None:
    before = datetime.now(UTC)
    registered = registered_not_before(uuid7())
    assert registered is not None
    assert before - timedelta(seconds=1) <= registered <= datetime.now(UTC)
    assert registered_not_before(uuid.uuid4()) is None


def test_measuring_again_at_most_every_ten_minutes_unless_the_clock_is_off() -> None:
    at = datetime(2026, 11, 28, 12, tzinfo=UTC)
    right = ClockMeasurement(at, 1_200, BOOT)
    assert measurement_due(None, at)
    assert not measurement_due(right, at + MEASURE_EVERY - timedelta(seconds=1), BOOT)
    assert measurement_due(right, at + MEASURE_EVERY, BOOT)
    assert measurement_due(ClockMeasurement(at, 45_000, BOOT), at + timedelta(seconds=1), BOOT)


@pytest.mark.parametrize(
    ("offset_ms", "said"),
    [
        (2 * 3_600_000 + 5 * 60_000, "loopt 2 u 5 min voor"),
        (-(7 * 60_000 + 3_000), "loopt 7 min 3 s achter"),
        (-20_420 * 86_400_000, "loopt 20420 dagen achter"),
    ],
)
def test_the_staff_read_how_far_off_the_clock_is(offset_ms: int, said: str) -> None:
    assert said in correction_notice(offset_ms)


# --- the device client ----------------------------------------------------------------


class FakeClock:
    """A device clock: `offset` ahead of the true time (which the test moves)."""

    def __init__(self, true_now: datetime, offset: timedelta) -> None:
        self.true_now = true_now
        self.offset = offset

    def __call__(self) -> datetime:
        return self.true_now + self.offset

    async def measured(self) -> int | None:
        """What a measurement against the cards API finds."""
        return round(self.offset / timedelta(milliseconds=1))


def _client(
    path: Path,
    clock: FakeClock,
    *,
    measure: bool = True,
    said: list[str] | None = None,
    identity: DeviceIdentity | None = None,
    broker: FakeBroker | None = None,
    offset_ms: Callable[[], Awaitable[int | None]] | None = None,
) -> DeviceClient:
    return DeviceClient(
        identity or DeviceIdentity(uuid.uuid4(), uuid.uuid4(), Ed25519PrivateKey.generate()),
        Journal(path),
        broker or FakeBroker(),
        clock_offset=(offset_ms or clock.measured) if measure else None,
        clock_notice=None if said is None else said.append,
        now=clock,
        boot=lambda _wall: None,
    )


def _occurred_at(client: DeviceClient) -> list[datetime]:
    return [
        datetime.fromisoformat(json.loads(p.record.payload)["occurred_at"])
        for p in client.journal.pending()
    ]


TRUE_NOW = datetime(2026, 11, 28, 14, 0, tzinfo=UTC)


async def test_a_scan_in_a_new_process_is_corrected_by_the_measurement_the_journal_kept(
    tmp_path: Path,
) -> None:
    clock = FakeClock(TRUE_NOW, timedelta(minutes=12))  # twelve minutes ahead
    first = _client(tmp_path / "j.sqlite", clock)
    assert (await first.measure_clock()) == ClockMeasurement(
        TRUE_NOW + timedelta(minutes=12), 12 * 60_000
    )
    first.journal.close()
    clock.true_now += timedelta(hours=3)
    said: list[str] = []
    later = _client(tmp_path / "j.sqlite", clock, measure=False, said=said)  # API away
    for _ in range(3):
        later.scan(card=CARD, activity=ACTIVITY, price_cents=450)
    assert _occurred_at(later) == [clock.true_now] * 3
    assert said == [correction_notice(12 * 60_000)]  # once, not at every scan
    assert "loopt 12 min voor" in said[0]


async def test_without_the_feature_these_scans_would_be_rejected_in_the_future(
    tmp_path: Path,
) -> None:
    """The same kiosk without a measurement signs its own clock: 12 minutes ahead."""
    clock = FakeClock(TRUE_NOW, timedelta(minutes=12))
    client = _client(tmp_path / "j.sqlite", clock, measure=False)
    client.scan(card=CARD, activity=ACTIVITY, price_cents=450)
    assert _occurred_at(client) == [TRUE_NOW + timedelta(minutes=12)]


async def test_an_explicit_time_is_signed_as_given_by_a_device_whose_clock_is_off(
    tmp_path: Path,
) -> None:
    said: list[str] = []
    client = _client(tmp_path / "j.sqlite", FakeClock(TRUE_NOW, timedelta(hours=3)), said=said)
    await client.measure_clock()
    given_at = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    client.scan(card=CARD, activity=ACTIVITY, price_cents=450, occurred_at=given_at)
    assert _occurred_at(client) == [given_at]
    assert said == []


async def test_a_kiosk_at_1970_is_corrected_to_the_day_not_just_within_the_heartbeat_bound(
    tmp_path: Path,
) -> None:
    """56 years behind is more than a heartbeat may carry (±31 years): the heartbeat gets
    the bound, the correction the whole offset."""
    booted = datetime(1970, 1, 1, 0, 1, tzinfo=UTC)
    clock = FakeClock(TRUE_NOW, booted - TRUE_NOW)
    broker = FakeBroker()
    client = _client(tmp_path / "j.sqlite", clock, broker=broker)
    await client.start()  # measures first
    await client.stop()
    assert client.clock_measurement == ClockMeasurement(
        booted, -round((TRUE_NOW - booted) / timedelta(milliseconds=1))
    )
    assert await client.send_heartbeat()
    beat = DeviceHeartbeat.model_validate_json(broker.topic[-1].payload)
    assert beat.clock_offset_ms == -MAX_OFFSET_MS
    broker.up = False
    client.scan(card=CARD, activity=ACTIVITY, price_cents=450)
    assert _occurred_at(client) == [TRUE_NOW]


async def test_a_kiosk_at_1970_that_cannot_measure_refuses_the_scan_and_journals_nothing(
    tmp_path: Path,
) -> None:
    clock = FakeClock(TRUE_NOW, datetime(1970, 1, 1, tzinfo=UTC) - TRUE_NOW)
    client = _client(tmp_path / "j.sqlite", clock, measure=False)
    with pytest.raises(ClockRefused, match="01-01-1970"):
        client.scan(card=CARD, activity=ACTIVITY, price_cents=450)
    assert (client.journal.counter, client.journal.count()) == (0, 0)


async def test_a_device_registered_last_week_refuses_a_clock_two_years_before_that(
    tmp_path: Path,
) -> None:
    device_id = uuid7()  # the cards API's ids carry its clock at registration
    identity = DeviceIdentity(device_id, uuid.uuid4(), Ed25519PrivateKey.generate())
    now = registered_not_before(device_id)
    assert now is not None
    clock = FakeClock(now, -timedelta(days=2 * 366))
    client = _client(tmp_path / "j.sqlite", clock, measure=False, identity=identity)
    assert isinstance(scan_time(clock(), None), ScanTime)  # not before EARLIEST_CHECKIN
    with pytest.raises(ClockRefused):
        client.scan(card=CARD, activity=ACTIVITY, price_cents=450)


async def test_the_clock_is_measured_at_most_every_ten_minutes_while_it_is_right(
    tmp_path: Path,
) -> None:
    calls = 0
    clock = FakeClock(TRUE_NOW, timedelta(seconds=1))

    async def offset_ms() -> int | None:
        nonlocal calls
        calls += 1
        return round(clock.offset / timedelta(milliseconds=1))

    client = _client(tmp_path / "j.sqlite", clock, offset_ms=offset_ms)
    for _ in range(3):
        await client.send_heartbeat()
        await client.measure_clock()
    assert calls == 1
    clock.true_now += MEASURE_EVERY
    await client.measure_clock()
    assert calls == 2
    clock.offset = timedelta(minutes=4)  # now off: asked every time, until set right
    clock.true_now += MEASURE_EVERY
    await client.measure_clock()
    await client.measure_clock()
    assert calls == 4


# --- the measurement against the cards API's Date header ------------------------------


def _cards_api(server_now: datetime) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/health/live"
        return httpx.Response(200, headers={"Date": format_datetime(server_now, usegmt=True)})

    return httpx.MockTransport(answer)


async def test_the_offset_is_measured_from_the_date_header_and_not_bounded() -> None:
    booted = datetime(1970, 1, 1, 0, 1, tzinfo=UTC)
    offset = await measure_clock_offset(
        "http://cards.test/health/live", clock=lambda: booted, transport=_cards_api(TRUE_NOW)
    )
    assert offset == round((booted - TRUE_NOW) / timedelta(milliseconds=1)) - 500
    assert offset is not None and offset < -MAX_OFFSET_MS


async def test_an_unreachable_cards_api_measures_nothing() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    transport = httpx.MockTransport(refuse)
    assert await measure_clock_offset("http://cards.test/health/live", transport=transport) is None


def test_a_kept_measurement_that_no_longer_reads_back_is_no_measurement(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    kept = ClockMeasurement(TRUE_NOW, -7_200_000, BOOT)
    journal.record_clock(kept)
    again = Journal(tmp_path / "j.sqlite")  # another process
    assert again.clock_measurement() == kept
    again.close()
    journal._db.execute("UPDATE clock SET measured_at = '2026-11-28T14:00:00'")  # no offset
    assert journal.clock_measurement() is None
    journal.close()
