"""The inbox: which events a consumer has already applied.

`claim_new` runs inside the transaction of the effect. An event whose row already exists
was applied before (a redelivery) and is filtered out; when the transaction rolls back the
rows go with it, so the event will be applied on the next delivery.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from shared.db import DbConnection


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
