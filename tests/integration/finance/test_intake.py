"""`vtp finance export`'s intake on the real broker: a payment request finance cannot read
is dead-lettered (so an operator sees it and can send it back once finance can read it),
never dropped behind a committed offset."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from shared import topics
from shared.envelope import new_envelope
from shared.kafka import KafkaSender, make_producer
from shared.outbox import OutgoingRecord
from shared.topics import DEAD_LETTER_TOPIC
from tests.support.components import Infra
from tests.support.kafka import read_topic
from tests.support.payments import payment_requested
from vtp.finance.book import PaymentBook
from vtp.finance.intake import GROUP_ID, take_in
from vtp.operations.deadletters import letter_of

pytestmark = pytest.mark.integration


def _request(**extra: object) -> tuple[uuid.UUID, OutgoingRecord]:
    payment = payment_requested()
    body = {**json.loads(payment.model_dump_json()), **extra}
    envelope = new_envelope(type=topics.PAYMENT_REQUESTED.event_type, source="/test")
    record = OutgoingRecord(
        event_id=str(envelope.id),
        topic=topics.PAYMENT_REQUESTED.name,
        key=topics.PAYMENT_REQUESTED.key_of(payment),
        headers=envelope.headers(),
        payload=json.dumps(body).encode(),
    )
    return payment.payment_id, record


async def test_a_payment_request_finance_cannot_read_is_dead_lettered_not_dropped(
    infra: Infra, topics_ready: None, tmp_path: Path
) -> None:
    readable, good = _request()
    # What a newer claims service could send an older `vtp finance`: a field it does not know.
    unreadable, bad = _request(payee_reference="new in a later version")
    producer = make_producer(infra.bootstrap_servers, client_id="test-finance-intake")
    await producer.start()
    try:
        await KafkaSender(producer).send_all([bad, good])
    finally:
        await producer.stop()

    book = PaymentBook(tmp_path / "payments.sqlite")
    try:
        report = await take_in(infra.bootstrap_servers, book, idle_s=1.0)
        assert book.get(readable) is not None
        assert book.get(unreadable) is None
    finally:
        book.close()
    assert report.undecodable >= 1

    letters = [
        letter_of(r.key, r.value, list(r.headers or ()))
        for r in await read_topic(infra.bootstrap_servers, DEAD_LETTER_TOPIC)
    ]
    mine = [
        letter
        for letter in letters
        if letter is not None and json.loads(letter.value).get("payment_id") == str(unreadable)
    ]
    assert [(m.consumer, m.reason, m.source_topic) for m in mine] == [
        (GROUP_ID, "schema_violation", topics.PAYMENT_REQUESTED.name)
    ]
    assert "payee_reference" in mine[0].detail
