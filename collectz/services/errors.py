"""Domain errors raised by services; one handler maps them to 404/403/422."""

from __future__ import annotations


class DomainError(Exception):
    status = 400

    def __init__(self, message: str = "", *, fields: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class NotFound(DomainError):
    status = 404


class Forbidden(DomainError):
    status = 403


class InvalidInput(DomainError):
    """Bad input: `fields` maps a form field to its message."""

    status = 422


class Conflict(DomainError):
    status = 409
