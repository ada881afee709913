"""Refusals the desk gives, each with a message a referrer can act on. The API maps them to
HTTP statuses; the domain never knows about HTTP."""

from __future__ import annotations


class Refused(Exception):
    """Base: the request is understood but not carried out."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def as_error(self) -> dict[str, str]:
        """{field, reason}: messages read "<field or subject>: <reason>"."""
        subject, separator, reason = self.message.partition(": ")
        if not separator:
            return {"field": "request", "reason": self.message}
        return {"field": subject, "reason": reason}


class NotFound(Refused):
    pass


class Conflict(Refused):
    """The request clashes with the current state (a card's status, an existing record)."""


class Forbidden(Refused):
    """The caller's role or organisation may not do this."""


class InvalidField(Refused):
    """A field's value is wrong; `field` names it and `reason` says why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def as_error(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason}
