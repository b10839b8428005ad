"""Reading a request: the JSON body and query arguments, type-checked at the boundary.

Types are checked here (a string where a number belongs, an unknown field, a NUL character); what the values
mean is checked by the services, which raise InvalidInput naming the field as they do for the forms. Both end as
a 422 with `fields`; a body that is not a JSON object is a 400.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from flask import request

from collectz.services.errors import DomainError, InvalidInput

INT_MAX = 2_147_483_647  # ids and counts are 32-bit integer columns
MISSING: Any = object()


class BadRequest(DomainError):
    """A request the API cannot read at all (400), as opposed to one with bad values (422)."""

    status = 400


def _check_text(value: Any, where: str) -> None:
    """Refuse NUL characters and unpaired surrogates anywhere: no database stores them."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidInput("Text may not contain NUL characters.", fields={where: "Contains a NUL character."})
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput("Text must be valid Unicode.", fields={where: "Not valid Unicode text."}) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, where)
            _check_text(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list):
        for item in value:
            _check_text(item, where)


def json_body() -> dict[str, Any]:
    """The request's JSON object; 400 when it is missing, not JSON or not an object."""
    if not request.is_json:
        raise BadRequest("Send a JSON object with Content-Type: application/json.")
    raw = request.get_data(cache=True)
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    _check_text(body, "")
    return body


class Reader:
    """Typed values from a JSON object (`json=True`) or query arguments, collecting one message per bad field."""

    def __init__(self, source: Mapping[str, Any], *, json: bool, known: Iterable[str] | None = None):
        self.source = source
        self.json = json
        self.errors: dict[str, str] = {}
        if known is not None:
            allowed = set(known)
            for name in source:
                if name not in allowed:
                    self.errors[name] = "Not a field of this request."

    def has(self, name: str) -> bool:
        return name in self.source

    def _raw(self, name: str) -> Any:
        return self.source.get(name, MISSING)

    def _fail(self, name: str, message: str) -> Any:
        self.errors.setdefault(name, message)
        return MISSING

    def text(self, name: str, *, nullable: bool = True, max_length: int | None = None) -> Any:
        value = self._raw(name)
        if value is MISSING or (value is None and nullable and self.json):
            return value
        if not isinstance(value, str):
            return self._fail(name, "Must be text" + (" or null." if nullable else "."))
        if "\x00" in value:  # a JSON body is checked as a whole (json_body); a query or form value here
            return self._fail(name, "Contains a NUL character.")
        if max_length is not None and len(value) > max_length:
            return self._fail(name, f"Use at most {max_length} characters.")
        return value

    def integer(self, name: str, *, minimum: int = 0, maximum: int = INT_MAX, nullable: bool = True) -> Any:
        value = self._raw(name)
        if value is MISSING or (value is None and nullable and self.json):
            return value
        if not self.json and isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                return self._fail(name, "Must be a whole number.")
        if isinstance(value, bool) or not isinstance(value, int):
            return self._fail(name, "Must be a whole number" + (" or null." if nullable else "."))
        if not minimum <= value <= maximum:
            return self._fail(name, f"Must be between {minimum} and {maximum}.")
        return value

    def number(self, name: str, *, minimum: float, maximum: float) -> Any:
        value = self._raw(name)
        if value is MISSING:
            return value
        try:
            number = float(value) if isinstance(value, str) and not self.json else value
        except ValueError:
            return self._fail(name, "Must be a number.")
        if isinstance(number, bool) or not isinstance(number, (int, float)) or number != number:
            return self._fail(name, "Must be a number.")
        if not minimum <= number <= maximum:
            return self._fail(name, f"Must be between {minimum:g} and {maximum:g}.")
        return number

    def boolean(self, name: str) -> Any:
        value = self._raw(name)
        if value is MISSING:
            return value
        if not self.json and isinstance(value, str) and value in ("true", "false"):
            return value == "true"
        if not isinstance(value, bool):
            return self._fail(name, "Must be true or false.")
        return value

    def choice(self, name: str, choices: Iterable[str], *, nullable: bool = False) -> Any:
        value = self._raw(name)
        if value is MISSING or (value is None and nullable):
            return value
        options = list(choices)
        if value not in options:
            return self._fail(name, f"Choose one of: {', '.join(options)}.")
        return value

    def day(self, name: str) -> Any:
        value = self._raw(name)
        if value is MISSING or value is None:
            return value
        if not isinstance(value, str):
            return self._fail(name, "Must be a date like 2025-01-31, or null.")
        try:
            return date.fromisoformat(value)
        except ValueError:
            return self._fail(name, "Must be a date like 2025-01-31.")

    def text_list(self, name: str, *, max_items: int = 200, max_length: int = 500) -> Any:
        value = self._raw(name)
        if value is MISSING:
            return value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return self._fail(name, "Must be a list of text.")
        if len(value) > max_items:
            return self._fail(name, f"At most {max_items} entries.")
        if any(len(v) > max_length for v in value):
            return self._fail(name, f"Each entry can have at most {max_length} characters.")
        return value

    def objects(self, name: str, *, max_items: int = 500) -> Any:
        value = self._raw(name)
        if value is MISSING:
            return value
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            return self._fail(name, "Must be a list of objects.")
        if len(value) > max_items:
            return self._fail(name, f"At most {max_items} entries.")
        return value

    def ids(self, name: str) -> Any:
        """A required list of record ids (its length is the service's to judge)."""
        value = self._raw(name)
        if value is MISSING or not isinstance(value, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) and 1 <= i <= INT_MAX for i in value):
            return self._fail(name, "Must be a list of ids (whole numbers from 1).")
        return value

    def mapping(self, name: str) -> Any:
        value = self._raw(name)
        if value is MISSING:
            return value
        if not isinstance(value, dict):
            return self._fail(name, "Must be an object.")
        return value

    def done(self) -> None:
        """InvalidInput (422) naming every bad field, if any."""
        if self.errors:
            raise InvalidInput("Please fix the marked fields.", fields=dict(self.errors))


def given(value: Any, default: Any = None) -> Any:
    """The value read, or `default` when the field was not given."""
    return default if value is MISSING else value
