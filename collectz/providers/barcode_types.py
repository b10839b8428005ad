"""Barcode services' products as our Candidates: the media type guessed from the category, in one place.

UPCitemdb and Barcode Lookup both file products under Google's product taxonomy ("Media > DVDs & Videos",
"Media > Books > Print Books", "Media > Music & Sound Recordings > Music CDs", "Software > Video Game Software"), and
now and then under a shop's own words ("Movies & TV", "Video Games > PlayStation 4", "CDs & Vinyl"). Both providers
ask this one function so that a scanned disc is a movie whichever service answered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from collectz.providers.base import EAN13, ISBN13, ClientProvider
from collectz.providers.records import Candidate, clean_text
from collectz.services.identifiers import IdentifierError, normalise_asin, normalise_ean, normalise_isbn

# Checked in this order: a "Video Games" category must not fall to the "video" of DVDs & Videos, and a music DVD is a
# film on a disc. Each pattern matches whole words in the casefolded category.
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("game", re.compile(r"\bvideo ?games?\b|\bvideo game software\b|\bcomputer games?\b")),
    ("movie", re.compile(r"\bdvds?\b|\bblu-?rays?\b|\bmovies?\b|\bfilms?\b|\bvideos\b|\b4k\b|\buhd\b")),
    ("book", re.compile(r"\bbooks?\b|\baudiobooks?\b")),
    ("audio", re.compile(r"\bmusic\b|\bcds?\b|\bvinyls?\b|\bsound recordings\b")),
)
# Hardware that shares the words above (a DVD player, a console, a turntable) is not a catalog item of that type.
_HARDWARE = re.compile(r"\bconsoles?\b(?! games?\b)|\baccessor(y|ies)\b|\bplayers?\b|\bturntables?\b|\breaders?\b")
_TOP_LEVEL_HARDWARE = ("electronics", "hardware", "cameras & optics", "vehicles & parts")


def media_type_for_category(category: str | None) -> str:
    """Our media type for a provider's product category: DVDs/Blu-ray → movie, Books → book, Music/CDs/Vinyl →
    audio, Video Games → game, anything else (or nothing) → other."""
    text = " ".join(str(category or "").casefold().split())
    if not text or _HARDWARE.search(text):
        return "other"
    game, *others = _RULES
    if game[1].search(text):
        return "game"  # before the hardware check: shops file games under "Electronics > Video Games" too
    if text.split(">", 1)[0].strip() in _TOP_LEVEL_HARDWARE:
        return "other"
    return next((media_type for media_type, pattern in others if pattern.search(text)), "other")


def category_leaf(category: str | None) -> str | None:
    """The most specific part of a taxonomy path ("Media > Books > Print Books" → "Print Books"); an item of type
    other keeps it as its kind."""
    parts = [part.strip() for part in str(category or "").split(">") if part.strip()]
    return parts[-1][:255] if parts else None


# Which type detail a product's brand fills for each media type; elsewhere it is kept as item metadata.
BRAND_DETAIL = {"movie": "studio", "book": "publisher", "audio": "label"}
_TEXT_MAX = 2000  # an item metadata value


@dataclass
class Product:
    """What both barcode services say about a product, before it becomes a Candidate (their field names differ)."""

    barcode: str
    title: str
    category: str | None = None
    brand: str | None = None
    description: str | None = None
    asin: str | None = None
    images: Iterable[object] = ()
    people: list[tuple[str, str]] = field(default_factory=list)
    release_date: date | None = None
    year: int | None = None
    extra: dict[str, str | None] = field(default_factory=dict)


def product_candidate(provider: str, product: Product) -> Candidate:
    """A scanned product as a Candidate of the type its category says: barcode as EAN-13 (and as ISBN-13 for a
    book), brand as the studio/publisher/label, the first web image as the cover, the category kept."""
    media_type = media_type_for_category(product.category)
    ean13 = _checked(normalise_ean, product.barcode)
    identifiers = {"ean13": ean13} if ean13 else {}
    if media_type == "book" and ean13 and ean13[:3] in ("978", "979"):
        identifiers["isbn13"] = _checked(normalise_isbn, ean13) or ""
    if product.asin and (asin := _checked(normalise_asin, product.asin)):
        identifiers["asin"] = asin
    details: dict[str, str] = {}
    extra = {key: value[:_TEXT_MAX] for key, raw in product.extra.items() if (value := clean_text(raw))}
    brand = clean_text(product.brand)
    if brand and media_type in BRAND_DETAIL:
        details[BRAND_DETAIL[media_type]] = brand[:255]
    elif brand:
        extra["brand"] = brand[:_TEXT_MAX]
    if media_type == "other" and (kind := category_leaf(product.category)):
        details["kind"] = kind
    if category := clean_text(product.category):
        extra["category"] = category[:_TEXT_MAX]
    return Candidate(
        provider=provider, provider_id=ean13 or product.barcode, media_type=media_type, title=product.title,
        release_date=product.release_date, year=product.year, overview=clean_text(product.description),
        people=product.people,
        identifiers={key: value for key, value in identifiers.items() if value},
        cover_url=first_web_image(product.images), details=details, extra=extra,
    )


def first_web_image(images: Iterable[object]) -> str | None:
    """The first http(s) image address; anything else (data:, javascript:, relative paths) is not a cover."""
    for image in images:
        text = clean_text(image)
        if text and re.fullmatch(r"https?://[^\s\"'<>]+", text, re.IGNORECASE) and len(text) <= 2000:
            return text
    return None


def _checked(normalise, value: str) -> str | None:  # type: ignore[no-untyped-def]
    """A provider's identifier as the catalog stores it, or None when its check digit (or shape) is wrong."""
    try:
        return normalise(value)
    except IdentifierError:
        return None


__all__ = ["BRAND_DETAIL", "Product", "category_leaf", "first_web_image", "media_type_for_category",
           "product_candidate"]


class BarcodeProvider(ClientProvider):
    """A barcode lookup service: any product, typed by its category; its client's lookup(code) finds it."""

    media_types = ("movie", "book", "audio", "game", "other")

    def by_identifier(self, kind: str, value: str) -> list[Candidate]:
        """By EAN-13/UPC-A, or by ISBN-13 (a book's barcode); a value with a bad check digit finds nothing."""
        if kind not in (EAN13, ISBN13):
            return []
        try:
            code = normalise_isbn(value) if kind == ISBN13 else normalise_ean(value)
        except IdentifierError:
            return []
        return self.client.lookup(code)
