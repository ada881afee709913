"""The inbox: which events a consumer has already applied.

`claim_new` runs inside the transaction of the effect. An event whose row already exists
was applied before (a redelivery) and is filtered out; when the transaction rolls back the
rows go with it, so the event will be applied on the next delivery.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from hashlib import blake2b

from shared.db import DbConnection


def inbox_key(event_id: uuid.UUID, body: bytes) -> uuid.UUID:
    """What the inbox remembers of an applied event: its id and its body together. The id
    alone is chosen by the sender (a device picks its check-ins' `ce_id`): a forged or
    buggy message reusing another event's id, applied first, would have the genuine one
    dropped as a duplicate without a trace. A redelivery brings the same body, so it still
    is a duplicate. BLAKE2b, not a checksum: a body must not be craftable to collide."""
    return uuid.UUID(bytes=blake2b(event_id.bytes + body, digest_size=16).digest())


async def claim_new(
    conn: DbConnection, consumer: str, event_ids: Sequence[uuid.UUID]
) -> set[uuid.UUID]:
    if not event_ids:
        return set()
    rows = await conn.fetch(
        """
        INSERT INTO inbox (consumer, event_id)
        SELECT $1, unnest($2::uuid[])
        ON CONFLICT DO NOTHING
        RETURNING event_id
        """,
        consumer,
        list(event_ids),
    )
    return {r["event_id"] for r in rows}
