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
    mail_problems,
    per_group,
    problems,
    process_gone,
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
    assert health_of("cards", 502, "<html>bad gateway</html>") == (
        ServiceHealth("cards", False, "HTTP 502: not ready")
    )


def test_a_service_not_ready_says_what_that_points_at() -> None:
    # Our readiness is a query of the service's database: a 503 "not ready" is that.
    assert health_of(
        "cards", 503, {"status": "not ready", "reason": "ConnectionRefusedError"}
    ).detail == (
        "HTTP 503: its database did not answer (ConnectionRefusedError): is PostgreSQL"
        " running and reachable? its log says more"
    )
    # Nothing listening: the process is gone.
    assert health_of("claims", None, None, "ConnectError", "http://127.0.0.1:8002").detail == (
        "no answer: ConnectError, nothing listens at http://127.0.0.1:8002: is its process"
        " running? its log says why it stopped"
    )
    # Listening, but nothing comes back: a hung (paused, stuck) or overloaded process.
    assert health_of("claims", None, None, "ReadTimeout", "http://127.0.0.1:8002").detail == (
        "no answer: ReadTimeout, nothing came back at http://127.0.0.1:8002 in time: its"
        " process hangs (stopped, or stuck in one task) or is overloaded"
    )
    assert health_of("claims", None, None, "RemoteProtocolError").detail == (
        "no answer: RemoteProtocolError"
    )


def test_a_stack_service_whose_process_exited_is_said_so_with_what_to_do() -> None:
    down = health_of("claims", None, None, "ConnectError", "http://127.0.0.1:8002")
    crashed = process_gone(down, 4242, "exited with status 1", "/srv/.vtp/logs/claims.log")
    assert not crashed.ready
    assert problems([crashed], [], Limits()) == [
        "claims is not ready (its process (pid 4242) exited with status 1, and `vtp up` does"
        " not restart it: the last lines of /srv/.vtp/logs/claims.log say why; restart the"
        " stack (Ctrl-C `vtp up`, then `vtp up`))"
    ]
    # Killed from outside, it wrote nothing about it: its log cannot say why.
    killed = process_gone(down, 4242, "was killed by SIGKILL", "/srv/.vtp/logs/claims.log")
    assert killed.detail == (
        "its process (pid 4242) was killed by SIGKILL, and `vtp up` does not restart it:"
        " something outside it killed it (the kernel's OOM killer: `dmesg`; or a person);"
        " restart the stack (Ctrl-C `vtp up`, then `vtp up`)"
    )


def test_mail_the_relay_does_not_take_is_a_problem_a_fresh_or_refused_one_is_not() -> None:
    refused = (
        "SMTP server unreachable: Error connecting to 127.0.0.1 on port 25: Connection refused"
    )
    pending: list[dict[str, object]] = [
        {"attempts": 7, "last_error": refused},
        {"attempts": 5, "last_error": refused},
        {"attempts": 0, "last_error": None},  # a backlog being sent: not a failure
        {"attempts": 3, "last_error": refused},  # not yet four times
        # One recipient's mailbox, full for now: that address's trouble, not the relay's.
        {"attempts": 9, "last_error": "SMTP 452: recipient refused: mailbox full"},
    ]
    assert mail_problems(pending) == [
        "notifications cannot deliver e-mail: 2 pending message(s) failed 4 times or more in"
        f" a row, the latest with `{refused}`: is the mail relay (SMTP) running and"
        " reachable? Once it is, they go out at their next retry (at most an hour apart);"
        " `GET /deliveries?status=pending` on notifications lists them and"
        " `POST /deliveries/{id}/retry` sends one at once"
    ]
    assert mail_problems(pending[2:]) == []
    assert mail_problems([]) == []


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
        "notifications is 10,001 record(s) behind on claims.claim-approved.v1: busy with a"
        " burst, or slowed down? `vtp lag` again in a minute shows whether it shrinks (a"
        " consumer that gets nothing through is named on its own, as stalled)",
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


def test_each_kind_of_recent_dead_letter_is_a_problem_saying_what_can_be_done() -> None:
    forged = Group(
        "claims.checkins",
        "bad_signature",
        "checkins.checkin-recorded.v1",
        3,
        None,
        None,
        "signature does not match the device's key",
        False,
    )
    old_consumer = Group(
        "notifications", "schema_violation", "claims.claim-reversed.v1", 2, None, None, "", True
    )
    assert dead_letter_problems([forged, old_consumer], "10m") == [
        "3 message(s) from checkins.checkin-recorded.v1 dead-lettered by claims.checkins in"
        " the last 10m (bad_signature: signature does not match the device's key): they will"
        " not be processed as they are (a redrive would be refused again);"
        " `vtp deadletters list --since 10m`",
        "2 message(s) from claims.claim-reversed.v1 dead-lettered by notifications in the last"
        " 10m (schema_violation): once its cause is gone (a consumer older than the event, a"
        " fault since fixed), `vtp deadletters redrive --reason schema_violation` sends them"
        " back; `vtp deadletters list --since 10m`",
    ]
    assert dead_letter_problems([forged], "2026-11-28T02:00")[0].startswith(
        "3 message(s) from checkins.checkin-recorded.v1 dead-lettered by claims.checkins since"
        " 2026-11-28T02:00 ("
    )
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


def test_cancellations_and_returns_waiting_long_are_problems_a_short_wait_is_not() -> None:
    answer = {
        **READY,
        "cancellations_parked": 2,
        "cancellations_parked_oldest_s": 1200.0,
        "returns_waiting": 1,
        "returns_waiting_oldest_s": 1800.0,
    }
    claims = health_of("claims", 200, answer)
    assert problems([claims], [], Limits()) == [
        "claims has 2 cancellation(s) waiting for a device (or a device's new key) it does not"
        " know, the oldest for 20 min: the check-ins they cancel are still refunded meanwhile;"
        " was the device registered with the cards service? (GET /checkins/parked names it)",
        "claims has 1 payment return(s) waiting for their settlement, the oldest for 30 min:"
        " was the settlement dead-lettered? (`vtp deadletters list`; after a week they are"
        " dead-lettered too)",
    ]
    assert problems([claims], [], Limits(parked_checkin_wait_s=1500, return_wait_s=2000)) == []
    assert health_of("cards", 200, READY).returns_waiting == (0, None)


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
