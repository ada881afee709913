from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from stdnum import luhn

from vtp.device.cardscan import NotACard, card_number_from_scan
from vtp.device.clock import MAX_OFFSET_MS, bounded_offset_ms, offset_from_date_header
from vtp.device.signer import DeviceIdentity
from vtp.device.simulate import NotLoopback, check_bounds, require_loopback


@pytest.mark.parametrize(
    "scanned",
    [
        "6299001234568",
        "6299 0012 3456 8",
        "https://vrijetijdspas.example/kaart/6299001234568",
        "VTP:6299-0012-3456-8",
    ],
)
def test_a_card_number_is_read_from_a_typed_number_or_a_qr_payload(scanned: str) -> None:
    assert card_number_from_scan(scanned) == "6299001234568"


@pytest.mark.parametrize(
    "scanned", ["", "6299001234567", "62990012345680", "6299001234568 6299000000002", "abc"]
)
def test_a_misread_or_ambiguous_scan_is_refused_on_the_device(scanned: str) -> None:
    with pytest.raises(NotACard):
        card_number_from_scan(scanned)


card_numbers = st.from_regex(r"\A[0-9]{12}\Z").map(lambda b: b + luhn.calc_check_digit(b))
wrappers = st.sampled_from(
    ["{}", "VTP:1:{}", "vtp:1:{}", "https://vtp.example/kaart/{}", " {}\r\n"]
)


@given(
    number=card_numbers,
    wrapper=wrappers,
    cuts=st.lists(st.tuples(st.integers(1, 12), st.sampled_from([" ", "-", "\u00a0"]))),
)
def test_any_valid_card_number_is_read_however_it_is_wrapped_or_grouped(
    number: str, wrapper: str, cuts: list[tuple[int, str]]
) -> None:
    grouped = number
    for at, separator in sorted(cuts, reverse=True):
        grouped = grouped[:at] + separator + grouped[at:]
    assert card_number_from_scan(wrapper.format(grouped)) == number


@given(number=card_numbers, at=st.integers(0, 12), change=st.integers(1, 9), wrapper=wrappers)
def test_any_misread_digit_is_refused_and_the_refusal_does_not_repeat_the_number(
    number: str, at: int, change: int, wrapper: str
) -> None:
    misread = number[:at] + str((int(number[at]) + change) % 10) + number[at + 1 :]
    with pytest.raises(NotACard) as refused:
        card_number_from_scan(wrapper.format(misread))
    assert misread not in str(refused.value)
    assert "kaartnummer" in str(refused.value)


def test_clock_offset_from_an_http_date_header() -> None:
    sent = datetime(2026, 5, 1, 12, 0, 10, 400_000, tzinfo=UTC)
    received = sent + timedelta(milliseconds=200)
    # The server said 12:00:00 (so really 12:00:00.000-.999); the device read 12:00:10.5.
    assert offset_from_date_header("Fri, 01 May 2026 12:00:00 GMT", sent, received) == 10_000


def test_simulation_is_bounded_and_only_aimed_at_this_machine() -> None:
    require_loopback("127.0.0.1:9092,localhost:9093")
    with pytest.raises(NotLoopback):
        require_loopback("10.1.2.3:9092")
    check_bounds(200, 2000, 600)
    for devices, rate, duration in [(0, 1, 1), (201, 1, 1), (1, 0, 1), (1, 2001, 1), (1, 1, 601)]:
        with pytest.raises(ValueError):
            check_bounds(devices, rate, duration)


def test_a_kiosk_that_believes_it_is_1970_still_reports_its_offset_in_a_heartbeat() -> None:
    """No real-time clock, no network at boot: the clock says 1970, every check-in will be
    out of the window, and the heartbeat is how anyone finds out. Its offset is held at the
    heartbeat's bound (over 31 years) instead of failing the heartbeat."""
    booted = datetime(1970, 1, 1, 0, 5, tzinfo=UTC)
    offset = bounded_offset_ms(
        offset_from_date_header("Sat, 28 Nov 2026 13:00:00 GMT", booted, booted)
    )
    assert offset == -MAX_OFFSET_MS
    identity = DeviceIdentity(uuid.uuid4(), uuid.uuid4(), Ed25519PrivateKey.generate())
    assert identity.heartbeat(buffered=0, clock_offset_ms=offset)[1].clock_offset_ms == offset
    ahead = booted.replace(year=2070)
    ahead_offset = offset_from_date_header("Sat, 28 Nov 2026 13:00:00 GMT", ahead, ahead)
    assert bounded_offset_ms(ahead_offset) == MAX_OFFSET_MS
