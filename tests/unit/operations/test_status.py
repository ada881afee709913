"""`vtp status`'s verdict: what counts as a problem, and how it is said."""

from __future__ import annotations

from vtp.operations.deadletters import Group
from vtp.operations.lag import TopicLag
from vtp.operations.status import (
    GroupLag,
    Limits,
    ServiceHealth,
    dead_letter_problems,
    health_of,
    per_group,
    problems,
)

READY = {
    "status": "ready",
    "outbox_pending": 0,
    "outbox_oldest_pending_s": None,
    "outbox_parked": 0,
}


def test_a_readiness_answer_becomes_a_service_health() -> None:
    assert health_of("claims", 200, READY) == ServiceHealth("claims", True, "")
    assert health_of(
        "cards", 200, {**READY, "outbox_pending": 4, "outbox_oldest_pending_s": 7.5}
    ) == (ServiceHealth("cards", True, "", outbox_pending=4, outbox_oldest_pending_s=7.5))
    assert health_of("cards", 503, {"status": "not ready", "reason": "ConnectionRefusedError"}) == (
        ServiceHealth("cards", False, "HTTP 503: ConnectionRefusedError")
    )
    assert health_of("cards", 502, "<html>bad gateway</html>") == (
        ServiceHealth("cards", False, "HTTP 502: not ready")
    )
    assert health_of("notifications", None, None, "ReadTimeout") == (
        ServiceHealth("notifications", False, "no answer: ReadTimeout")
    )


def test_all_is_well_when_everything_is_ready_published_and_near_the_end() -> None:
    services = [ServiceHealth("claims", True, "", outbox_pending=30, outbox_oldest_pending_s=0.2)]
    lags = [TopicLag("notifications", "claims.claim-approved.v1", 10_000, 8, 8)]
    assert problems(services, lags, Limits()) == []


def test_each_problem_is_named_with_what_to_look_at() -> None:
    services = [
        ServiceHealth("cards", False, "no answer: ConnectError", outbox_parked=3),
        ServiceHealth(
            "claims", True, "", outbox_pending=120, outbox_oldest_pending_s=61, outbox_parked=2
        ),
    ]
    lags = [
        TopicLag("notifications", "claims.claim-approved.v1", 10_001, 8, 8),
        TopicLag("cards.usage", "claims.claim-approved.v1", 10_000, 8, 8),
    ]
    assert problems(services, lags, Limits(lag_records=10_000, outbox_wait_s=60)) == [
        # a service that does not answer: its outbox figures are not known, so not judged
        "cards is not ready (no answer: ConnectError)",
        "claims has 2 outbox record(s) parked: the broker will not take them as they are"
        " (README: parked outbox rows)",
        "claims has 120 event(s) waiting to be published, the oldest for 61 s:"
        " is the broker reachable?",
        "notifications is 10,001 record(s) behind on claims.claim-approved.v1",
    ]


def test_a_group_is_summed_over_its_topics_with_the_one_it_is_furthest_behind_on() -> None:
    lags = [
        TopicLag("notifications", "a", 5, 1, 8),
        TopicLag("notifications", "b", 9, 2, 8),
        TopicLag("cards.usage", "a", 0, 0, 8),
    ]
    assert per_group(lags) == [
        GroupLag("cards.usage", 0, None, 0),
        GroupLag("notifications", 14, "b", 9),
    ]


def test_each_kind_of_recent_dead_letter_is_a_problem_with_where_to_look() -> None:
    group = Group(
        "claims.checkins", "bad_signature", "checkins.checkin-recorded.v1", 3, None, None, "", False
    )
    assert dead_letter_problems([group], "10m") == [
        "3 message(s) from checkins.checkin-recorded.v1 dead-lettered by claims.checkins since"
        " 10m (bad_signature): `vtp deadletters list --since 10m`"
    ]
    assert dead_letter_problems([], "10m") == []


def test_check_ins_waiting_long_for_their_device_are_a_problem_a_short_wait_is_not() -> None:
    answer = {**READY, "checkins_parked": 3, "checkins_parked_oldest_s": 900.0}
    claims = health_of("claims", 200, answer)
    assert (claims.checkins_parked, claims.checkins_parked_oldest_s) == (3, 900.0)
    assert health_of("cards", 200, READY).checkins_parked is None  # cards parks none
    assert problems([claims], [], Limits(parked_checkin_wait_s=600)) == [
        "claims has 3 check-in(s) waiting for a device (or a device's new key) it does not"
        " know, the oldest for 15 min: was the device registered with the cards service?"
        " (GET /checkins/parked names it)"
    ]
    # Seconds: the device's registration is on its way, as it is when all is well.
    assert problems([claims], [], Limits(parked_checkin_wait_s=1000)) == []


def test_a_consumer_stuck_for_long_is_named_with_its_error_a_short_stall_is_not() -> None:
    answer = {
        **READY,
        "consumers_stalled": [
            {"consumer": "claims.checkins", "stalled_s": 95.2, "error": "LockNotAvailableError"},
            {"consumer": "claims.cards", "stalled_s": 3.0, "error": "ConnectionResetError"},
        ],
    }
    claims = health_of("claims", 200, answer)
    assert claims.consumers_stalled == (
        ("claims.checkins", 95.2, "LockNotAvailableError"),
        ("claims.cards", 3.0, "ConnectionResetError"),
    )
    assert problems([claims], [], Limits(consumer_stall_s=30)) == [
        "claims: consumer claims.checkins has got no batch through for 95 s"
        " (LockNotAvailableError): its log says why (`transient failure, retrying batch` or"
        " `batch failed`)"
    ]
    assert health_of("cards", 200, READY).consumers_stalled == ()
