"""Sending a device's records to Kafka and reporting how many, from the first, arrived.

The broker may be down, paused or slow: a send that does not complete within the request
timeout counts as not delivered. The caller keeps those records and sends them again, in
the same order, later — the broker may by then hold a first copy (at-least-once).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.logging import get_logger
from shared.outbox import OutgoingRecord

log = get_logger(__name__)
_UNREACHABLE = (KafkaError, OSError, TimeoutError)


class Transport(Protocol):
    async def send_in_order(self, records: Sequence[OutgoingRecord]) -> int:
        """Send all; return the length of the prefix the broker acknowledged."""
        ...

    async def close(self) -> None: ...


class KafkaTransport:
    def __init__(
        self, bootstrap_servers: str, *, client_id: str, request_timeout_ms: int = 10_000
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._timeout_ms = request_timeout_ms
        self._producer: AIOKafkaProducer | None = None
        self._connecting = asyncio.Lock()  # devices of one simulation share a transport

    async def _connected(self) -> AIOKafkaProducer | None:
        async with self._connecting:
            if self._producer is None:
                self._producer = await self._connect()
            return self._producer

    async def _connect(self) -> AIOKafkaProducer | None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            acks="all",
            # The embedded broker cannot do idempotent producers; order within a partition
            # still holds because aiokafka keeps one batch in flight per partition.
            enable_idempotence=False,
            linger_ms=5,
            request_timeout_ms=self._timeout_ms,
            retry_backoff_ms=200,
        )
        try:
            await asyncio.wait_for(producer.start(), self._timeout_ms / 1000 + 1)
        except _UNREACHABLE as exc:
            log.info("broker unreachable", error=type(exc).__name__)
            await _quietly_stop(producer)
            return None
        return producer

    async def send_in_order(self, records: Sequence[OutgoingRecord]) -> int:
        producer = await self._connected()
        if producer is None:
            return 0
        futures: list[asyncio.Future[Any]] = []
        for r in records:
            try:
                futures.append(
                    await producer.send(r.topic, value=r.payload, key=r.key, headers=r.headers)
                )
            except _UNREACHABLE as exc:
                log.info("send failed", error=type(exc).__name__)
                break
        results = await asyncio.gather(*futures, return_exceptions=True)
        delivered = 0
        for result in results:
            if isinstance(result, BaseException):
                log.info("send not acknowledged", error=type(result).__name__)
                break
            delivered += 1
        return delivered

    async def close(self) -> None:
        if self._producer is not None:
            await _quietly_stop(self._producer)
            self._producer = None


async def _quietly_stop(producer: AIOKafkaProducer) -> None:
    with contextlib.suppress(*_UNREACHABLE):
        await asyncio.wait_for(producer.stop(), 10)
