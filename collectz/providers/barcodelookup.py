"""Barcode Lookup (API v3): the product behind a barcode, and a product search, answered as our Candidates.

Every call is GET /v3/products with the account's `key` as a query parameter (the API's only way; HttpClient never
shows a query string in a message or a log line) and `formatted=y`; a lookup adds `barcode=…`, a search `search=…`.
The answer is `{"products": [...]}`; the API answers 404 when it has no data for the barcode, 403 for a key it
refuses and 429 past the plan's per-minute or monthly calls. `normalise_product` is the one place a product becomes
a Candidate; the media type comes from its category (providers.barcode_types).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from collectz.providers.barcode_types import BarcodeProvider, Product, product_candidate
from collectz.providers.base import SearchQuery
from collectz.providers.config import ProviderConfig
from collectz.providers.http import BadCredentials, BadResponse, HttpClient, NotFoundAt, ProviderError
from collectz.providers.records import Candidate, clean_text, parse_date
from collectz.services.identifiers import normalise_ean

if TYPE_CHECKING:
    from collectz.providers.throttle import Throttle

PROVIDER = "barcodelookup"
DEFAULT_BASE_URL = "https://api.barcodelookup.com"
PRODUCTS_PATH = "/v3/products"
CHECK_CODE = "3614272049529"  # the example in Barcode Lookup's documentation

# Barcode Lookup's contributor roles → our person roles; a role not listed is a creator.
ROLES = {"author": "author", "writer": "writer", "director": "director", "actor": "cast", "starring": "cast",
         "cast": "cast", "artist": "artist", "performer": "artist", "composer": "artist", "illustrator": "illustrator",
         "producer": "producer", "editor": "creator"}


class BarcodeLookupClient:
    """Calls Barcode Lookup's /v3/products with the account key."""

    def __init__(self, http: HttpClient) -> None:
        self.http = http
        self.provider = http.provider

    def __repr__(self) -> str:
        return f"<BarcodeLookupClient {self.http.base_url}>"

    @classmethod
    def from_config(cls, config: ProviderConfig, *, base_url: str = DEFAULT_BASE_URL,
                    throttle: Throttle | None = None) -> BarcodeLookupClient:
        """A client for the saved Barcodes card: its `api_key` secret (required for Barcode Lookup)."""
        key = config.secret("api_key").strip()
        if not key:
            raise BadCredentials(config.provider, "Barcode Lookup needs an API key: paste it on the Barcodes card")
        http = HttpClient.from_config(config, base_url, params={"key": key, "formatted": "y"}, throttle=throttle)
        return cls(http)

    def check(self) -> None:
        """One lookup of the documented example barcode (it spends one of the plan's calls)."""
        self._products({"barcode": CHECK_CODE}, what="the test lookup")

    def lookup(self, code: str) -> list[Candidate]:
        """The products filed under a UPC-A, EAN-13 or ISBN-13 (normalised to 13 digits first); [] when unknown."""
        ean13 = normalise_ean(code)  # IdentifierError (a ValueError) for a bad check digit, before any request
        return [normalise_product(p) for p in self._products({"barcode": ean13}, what=f"barcode {ean13}")]

    def search(self, text: str) -> list[Candidate]:
        """Products matching a title (the API's general `search`, first page)."""
        text = " ".join(str(text or "").split())
        if not text:
            return []
        return [normalise_product(p) for p in self._products({"search": text}, what="search results")]

    def _products(self, params: dict[str, Any], *, what: str) -> list[dict[str, Any]]:
        try:
            body = self.http.get_json(PRODUCTS_PATH, params=params)
        except NotFoundAt:
            return []  # "no data returned" for this barcode or search
        except BadCredentials as exc:
            failure: ProviderError = BadCredentials(self.provider, "Barcode Lookup refused the API key for "
                                                                   f"{what}; check it on the Barcodes card "
                                                                   f"({exc.message})")
        else:
            products = body.get("products") if isinstance(body, dict) else None
            if isinstance(products, list):
                return [p for p in products if isinstance(p, dict)]
            failure = BadResponse(self.provider, f"GET {PRODUCTS_PATH}: the answer has no products list")
        raise failure


# --- Barcode Lookup JSON → Candidate: the one place -------------------------------------------------------------


def normalise_product(product: dict[str, Any]) -> Candidate:
    """A product of /v3/products (barcode_number, title, category, brand/manufacturer, contributors, images…)."""
    if not isinstance(product, dict):
        raise BadResponse(PROVIDER, "a product is not a JSON object")
    barcode = clean_text(product.get("barcode_number"))
    title = clean_text(product.get("title"))
    if barcode is None or title is None:
        raise BadResponse(PROVIDER, "a product without a barcode_number or a title")
    released = clean_text(product.get("release_date"))
    images = product.get("images") if isinstance(product.get("images"), list) else []
    return product_candidate(PROVIDER, Product(
        barcode=barcode, title=title, category=clean_text(product.get("category")),
        brand=clean_text(product.get("brand")) or clean_text(product.get("manufacturer")),
        description=clean_text(product.get("description")), asin=clean_text(product.get("asin")), images=images,
        people=_people(product.get("contributors")), release_date=parse_date(released),
        year=int(released[:4]) if released and re.fullmatch(r"(19|20)\d\d", released[:4]) else None,
        extra={"format": clean_text(product.get("format")), "mpn": clean_text(product.get("mpn")),
               "model": clean_text(product.get("model")), "manufacturer": clean_text(product.get("manufacturer"))},
    ))


def _people(contributors: Any) -> list[tuple[str, str]]:
    people = []
    for entry in contributors if isinstance(contributors, list) else []:
        if isinstance(entry, dict) and (name := clean_text(entry.get("name"))):
            role = (clean_text(entry.get("role")) or "").casefold()
            people.append((ROLES.get(role, "creator"), name))
    return people


# --- as a metadata provider (collectz.providers.base) ----------------------------------------------------------


class BarcodeLookupProvider(BarcodeProvider):
    """Barcode Lookup as the barcode lookup uses it: any product, typed by its category."""

    key = PROVIDER

    def search(self, query: SearchQuery, *, limit: int = 10) -> list[Candidate]:
        """Products by title; a media type keeps those whose category says that type, a year those of that year."""
        found = self.client.search(query.title)
        if query.media_type:
            found = [c for c in found if c.media_type == query.media_type]
        if query.year:
            found = [c for c in found if c.year in (None, query.year)]
        return found[:limit]

    def details(self, candidate: Candidate) -> Candidate:
        """A search result already says all Barcode Lookup knows."""
        return candidate


def build(config: ProviderConfig, *, throttle: Throttle | None = None) -> BarcodeLookupProvider:
    """The provider for the saved Barcodes card (its base URL, when set, is the address: e.g. a local fake)."""
    return BarcodeLookupProvider(BarcodeLookupClient.from_config(config, throttle=throttle))


__all__ = ["DEFAULT_BASE_URL", "PROVIDER", "BarcodeLookupClient", "BarcodeLookupProvider", "build",
           "normalise_product"]
