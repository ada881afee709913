from __future__ import annotations

import pytest

from vtp.device.cardscan import NotACard, card_number_from_scan
from vtp.device.clock import offset_from_date_header
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


def test_clock_offset_from_an_http_date_header() -> None:
    from datetime import UTC, datetime, timedelta

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
