"""The base of every event payload: strict (unknown fields are an error) and immutable."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


def _require_aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamps must carry a UTC offset")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_require_aware)]


class EventPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
