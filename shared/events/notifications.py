"""Events of the notifications service, for operators: what could not be delivered.

They name the party by its recipient key ("org:<id>", "provider:<id>", "holder:<id>",
"finance"), never by name or address: an operator looks the party up through the API.
"""

from __future__ import annotations

import uuid

from pydantic import Field

from shared.events.base import EventPayload, Instant


class NotificationDeadLettered(EventPayload):
    """A delivery was given up: a permanent refusal, or every retry failed."""

    delivery_id: uuid.UUID
    kind: str = Field(max_length=50, pattern=r"^[a-z_]+$")
    # A key, never a name: letters, optionally ":" and a UUID.
    recipient: str = Field(pattern=r"^[a-z]+(:[0-9a-f-]{36})?$")
    channel: str = Field(pattern=r"^(email|webhook|letter)$")
    reason: str = Field(max_length=300)
    attempts: int = Field(ge=1)
    dead_at: Instant
