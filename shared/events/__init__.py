"""Typed event payloads, one module per domain. Topics and types are named in `shared.topics`."""

from shared.events.base import EventPayload

__all__ = ["EventPayload"]
