"""A partner whose webhook endpoint is down or hangs costs its own deliveries a try, never
another partner's: the others are sent in the same pass, and the down partner's backlog
waits (without counting as tries) instead of each delivery timing out on its own."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from services.notifications.delivery import WEBHOOKS_PER_PARTNER, DeliveryWorker
from services.notifications.settings import NotificationsSettings
from tests.integration.notifications.conftest import (
    Feed,
    WebhookReceiver,
    holder,
    organisation,
    payment_requested,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def hung_url() -> Iterator[str]:
    """An endpoint that accepts connections and never answers (a partner's stuck server)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=512)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


async def test_a_hung_partner_does_not_fail_another_partner_s_webhooks(
    feed: Feed,
    settings: NotificationsSettings,
    pool: asyncpg.Pool,
    receiver: WebhookReceiver,
    hung_url: str,
    keys: tuple[str, str],
) -> None:
    worker = DeliveryWorker(
        pool, settings.model_copy(update={"retry_base_s": 60.0, "retry_max_s": 600.0})
    )
    down, up = uuid.uuid4(), uuid.uuid4()
    a, b = uuid.uuid4(), uuid.uuid4()
    up_url = receiver.expect("/up", f"org:{up}", [204])
    await feed(
        organisation(down, webhook=hung_url),
        organisation(up, webhook=up_url),
        holder(a, down, keys[1]),
        holder(b, up, keys[1]),
    )
    # More than an HTTP client's whole connection pool for the partner that hangs.
    await feed(*(payment_requested(a) for _ in range(120)))
    await feed(payment_requested(b))

    started = time.monotonic()
    assert await worker.deliver_due() == 121
    # One timeout for the hung partner, not one per queued delivery.
    assert time.monotonic() - started < 3 * worker.webhooks.timeout_s

    sent_up = await pool.fetchrow(
        "SELECT status, attempts FROM deliveries WHERE recipient = $1", f"org:{up}"
    )
    assert sent_up is not None and (sent_up["status"], sent_up["attempts"]) == ("sent", 1)
    assert len(receiver.bodies("/up")) == 1

    rows = await pool.fetch(
        "SELECT status, attempts, last_error, next_attempt_at > now() AS waits"
        " FROM deliveries WHERE recipient = $1",
        f"org:{down}",
    )
    assert {r["status"] for r in rows} == {"pending"}
    tried = [r for r in rows if r["attempts"] == 1]
    assert 1 <= len(tried) <= WEBHOOKS_PER_PARTNER
    assert all("ReadTimeout" in r["last_error"] for r in tried)
    # The rest were not tried: no attempt counted, no address in the reason, and they wait
    # with the partner instead of being leased again at once.
    waiting = [r for r in rows if r["attempts"] == 0]
    assert len(waiting) == 120 - len(tried)
    assert all(r["waits"] for r in rows)
    assert {r["last_error"] for r in waiting} == {
        "not tried: the partner's endpoint failed earlier in this pass"
    }

    # Still down at the next pass: the untried ones wait longer (the partner's backoff), and
    # a delivery is only ever given up after tries of its own.
    await pool.execute("UPDATE deliveries SET next_attempt_at = now()")
    assert await worker.deliver_due() == 120
    waits = await pool.fetch(
        "SELECT attempts, extract(epoch FROM next_attempt_at - now()) AS wait_s"
        " FROM deliveries WHERE recipient = $1",
        f"org:{down}",
    )
    assert sum(r["attempts"] for r in waits) <= 2 * WEBHOOKS_PER_PARTNER
    assert min(r["wait_s"] for r in waits if r["attempts"] == 0) > 90  # 2 x 60 s
