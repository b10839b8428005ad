"""Barcode batches: codes typed, pasted or scanned (a USB scanner types a code and Enter), one per line."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from stdnum import ean, isbn

from collectz.importers import Record

MAX_CODE = 32
_SPLIT = re.compile(r"[\s,;]+")


def parse_codes(text: str) -> list[tuple[int, str]]:
    """(line, code) for every code in the text: one or more per line, split on spaces, commas or semicolons."""
    codes: list[tuple[int, str]] = []
    for line_number, line in enumerate((text or "").splitlines(), start=1):
        for code in _SPLIT.split(line.strip()):
            if code:
                codes.append((line_number, code[:MAX_CODE]))
    return codes


def record_for(code: str) -> Record:
    """A stub record for a code: a valid ISBN makes a book, a valid UPC/EAN an item of unknown type, anything else
    is passed on as given (and fails validation with the reason)."""
    compact = re.sub(r"[\s-]", "", code)
    title = f"Barcode {compact}"
    if isbn.is_valid(compact) and (len(compact) == 10 or compact[:3] in ("978", "979")):
        return {"media_type": "book", "title": f"ISBN {isbn.format(compact)}", "isbn": compact,
                "extra": {"needs_details": "1", "scanned_code": code}}
    if compact.isdigit() and len(compact) in (12, 13) and ean.is_valid(compact.zfill(13)):
        return {"media_type": "other", "title": title, "ean": compact,
                "extra": {"needs_details": "1", "scanned_code": code}}
    return {"media_type": "other", "title": title, "ean": compact}


def records(codes: Iterable[tuple[int, str] | list]) -> Iterator[Record]:
    for line, code in codes:
        record = record_for(str(code))
        record["line"] = int(line)
        yield record
