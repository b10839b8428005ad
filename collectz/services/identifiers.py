"""Identifier validation and normalisation (python-stdnum).

ISBN-10 (with an X check digit) and ISBN-13 are stored as ISBN-13; UPC-A and EAN-13 are
stored as EAN-13. A bad check digit is an error with a message, never a silent drop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stdnum import ean, isbn
from stdnum.exceptions import InvalidChecksum, ValidationError

_ASIN = re.compile(r"^[A-Z0-9]{10}$")


class IdentifierError(ValueError):
    """A field-level message for a bad identifier."""


def _digits(raw: str, *lengths: int) -> bool:
    return len(raw) in lengths and raw.isascii() and raw.isdigit()


def normalise_isbn(raw: str) -> str:
    """ISBN-10 or ISBN-13 (any hyphens/spaces) → ISBN-13."""
    if _digits(raw or "", 13) and raw[:3] in ("978", "979") and ean.calc_check_digit(raw[:-1]) == raw[-1]:
        return raw  # already compact and valid: stdnum's own check, without its clean-up pass (imports: every row)
    try:
        value = isbn.validate(raw or "")  # compacts, then checks (imports call this for every row: once, not twice)
    except InvalidChecksum:
        raise IdentifierError("This ISBN's check digit is wrong: check the number.") from None
    except ValidationError:
        raise IdentifierError("Enter a 10- or 13-digit ISBN.") from None
    return value if len(value) == 13 else isbn.to_isbn13(value)


def normalise_ean(raw: str) -> str:
    """UPC-A (12 digits) or EAN-13 → EAN-13."""
    if _digits(raw or "", 12, 13) and ean.calc_check_digit(raw[:-1]) == raw[-1]:
        return raw.zfill(13)  # already compact and valid (see normalise_isbn)
    try:
        value = ean.validate(raw or "")  # compacts, then checks
    except InvalidChecksum:
        if len(ean.compact(raw or "")) not in (12, 13):  # the shape is the problem, not the digit
            raise IdentifierError("Enter a 12-digit UPC or a 13-digit EAN.") from None
        raise IdentifierError("This barcode's check digit is wrong: check the number.") from None
    except ValidationError:
        raise IdentifierError("Enter a 12-digit UPC or a 13-digit EAN.") from None
    if len(value) not in (12, 13):  # EAN-8 and GTIN-14 are valid EANs, but not what an item carries
        raise IdentifierError("Enter a 12-digit UPC or a 13-digit EAN.")
    return value.zfill(13)


def normalise_asin(raw: str) -> str:
    value = re.sub(r"[\s-]", "", raw or "").upper()
    if not _ASIN.match(value):
        raise IdentifierError("An ASIN has 10 letters and digits.")
    return value


@dataclass(frozen=True)
class Lookup:
    """A search term that is an exact identifier: which columns to match and the value."""

    isbn13: str | None
    ean13: str | None


def parse_lookup(term: str) -> Lookup | None:
    """If a search term is a valid ISBN, EAN or UPC, the normalised values to look for; else None."""
    compact = re.sub(r"[\s-]", "", term or "")
    if not re.fullmatch(r"\d{9}[\dXx]|\d{12,13}", compact):
        return None
    isbn13 = ean13 = None
    try:
        isbn13 = normalise_isbn(compact)
    except IdentifierError:
        pass
    try:
        ean13 = normalise_ean(compact)
    except IdentifierError:
        pass
    if isbn13 is None and ean13 is None:
        return None
    # A book's barcode is its ISBN-13, so either column may hold it.
    return Lookup(isbn13=isbn13 or (ean13 if ean13 and ean13[:3] in ("978", "979") else None),
                  ean13=ean13 or isbn13)
