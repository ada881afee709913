"""The broker answers a CreateTopics request per topic instead of failing it: a refusal must
be read from the answer, or a service starts and fails at its first publish."""

from __future__ import annotations

from shared.kafka import topic_creation_errors


def test_created_and_existing_topics_are_no_refusal() -> None:
    assert topic_creation_errors([("a.v1", 0, None), ("b.v1", 36, "already exists")]) == ""


def test_a_refused_topic_is_named_with_the_brokers_reason_or_its_code() -> None:
    answer = [
        ("a.v1", 0, None),
        ("b.v1", 38, "Replication factor: 1 below min.insync.replicas: 2"),
        ("c.v1", 29),
    ]
    assert topic_creation_errors(answer) == (
        "b.v1: Replication factor: 1 below min.insync.replicas: 2; c.v1: error 29"
    )
