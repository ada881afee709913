"""The base of every event payload: strict (unknown fields are an error) and immutable."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict

# Timestamps must carry a UTC offset ("Input should have timezone info" otherwise):
# pydantic's own check, in its validator core rather than a Python call per field.
__all__ = ["AwareDatetime", "EventPayload"]


class EventPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
