"""The base of every event payload: strict (unknown fields are an error) and immutable."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# The instants an event may name. Beyond them a time cannot be taken to UTC, to a local
# day, or a window added to it (`0001-01-01T00:00:00+01:00` raised OverflowError in the
# signature check, so the event was refused as a handler error, after its whole batch had
# been applied again one event at a time). A kiosk that believes it is 1970 is inside.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)

# Timestamps must carry a UTC offset ("Input should have timezone info" otherwise) and lie
# within the bounds: pydantic's own checks, in its validator core rather than a Python call
# per field.
Instant = Annotated[AwareDatetime, Field(ge=EARLIEST, le=LATEST)]

__all__ = ["EARLIEST", "LATEST", "EventPayload", "Instant"]


class EventPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
