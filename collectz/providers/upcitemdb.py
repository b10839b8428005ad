"""UPCitemdb: the product behind a UPC/EAN/ISBN barcode (and a product-name search), answered as our Candidates.

Without a key UPCitemdb's free "Explorer" plan answers /prod/trial/… (about 100 requests a day, a few a minute); a
paid plan's key goes to /prod/v1/… in the `user_key` header with `key_type: 3scale`. Every answer is JSON: success is
`{"code": "OK", "total": n, "offset": n, "items": [...]}`, an error `{"code": "NOT_FOUND" | "INVALID_QUERY" |
"EXCEED_LIMIT" | …, "message": "..."}` with a matching HTTP status. `normalise_item` is the one place an item
becomes a Candidate; the media type comes from the item's category (providers.barcode_types).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from collectz.providers.barcode_types import BarcodeProvider, Product, product_candidate
from collectz.providers.base import SearchQuery
from collectz.providers.config import ProviderConfig
from collectz.providers.http import (
    BadCredentials,
    BadResponse,
    HttpClient,
    NotFoundAt,
    ProviderError,
    RateLimited,
    Unavailable,
)
from collectz.providers.records import Candidate, clean_text
from collectz.services.identifiers import normalise_ean

if TYPE_CHECKING:
    from collectz.providers.throttle import Throttle

PROVIDER = "upcitemdb"
DEFAULT_BASE_URL = "https://api.upcitemdb.com"
TRIAL_PREFIX = "/prod/trial"
PAID_PREFIX = "/prod/v1"
PAGE_SIZE = 10  # UPCitemdb's items per answer
CHECK_CODE = "0885909950805"  # the example in UPCitemdb's documentation

# UPCitemdb's error codes (upcitemdb.com/wp/docs/main/development/responses) → our errors, for a body that reports
# one even though the status said success.
_RATE_CODES = frozenset({"EXCEED_LIMIT", "TOO_FAST"})
_CREDENTIAL_CODES = frozenset({"INVALID_KEY", "AUTH_ERR", "UNAUTHORIZED"})
_UNAVAILABLE_CODES = frozenset({"SERVER_ERR"})
_NOTHING_CODES = frozenset({"NOT_FOUND"})


def error_from_body(body: Any, where: str, *, provider: str = PROVIDER) -> ProviderError | None:
    """The error a UPCitemdb body reports (`{"code": "EXCEED_LIMIT", "message": …}`), or None for "OK" and for
    NOT_FOUND (nothing found is not an error)."""
    if not isinstance(body, dict):
        return BadResponse(provider, f"{where}: the answer is not a JSON object")
    code = clean_text(body.get("code"))
    if code == "OK" or code in _NOTHING_CODES:
        return None
    said = (clean_text(body.get("message")) or "no message")[:200]
    message = f"{where}: UPCitemdb says {said!r} ({code})"
    if code in _RATE_CODES:
        return RateLimited(provider, message)
    if code in _CREDENTIAL_CODES:
        return BadCredentials(provider, message)
    if code in _UNAVAILABLE_CODES:
        return Unavailable(provider, message)
    return BadResponse(provider, message)


class UpcitemdbClient:
    """Calls UPCitemdb's lookup and search, on the trial or the paid endpoints."""

    def __init__(self, http: HttpClient, *, paid: bool = False) -> None:
        self.http = http
        self.provider = http.provider
        self.prefix = PAID_PREFIX if paid else TRIAL_PREFIX

    def __repr__(self) -> str:
        return f"<UpcitemdbClient {self.http.base_url}{self.prefix}>"

    @classmethod
    def from_config(cls, config: ProviderConfig, *, base_url: str = DEFAULT_BASE_URL,
                    throttle: Throttle | None = None) -> UpcitemdbClient:
        """A client for the saved Barcodes card: with its `api_key` secret the paid endpoints, else the trial."""
        key = config.secret("api_key").strip()
        headers = {"user_key": key, "key_type": "3scale"} if key else {}
        http = HttpClient.from_config(config, base_url, headers=headers, throttle=throttle)
        return cls(http, paid=bool(key))

    # -- calls -----------------------------------------------------------------------------------------------------

    def check(self) -> None:
        """One lookup of UPCitemdb's own example code (it spends one of the plan's requests)."""
        self._get("lookup", {"upc": CHECK_CODE}, what="the test lookup")

    def lookup(self, code: str) -> list[Candidate]:
        """The items filed under a UPC-A, EAN-13 or ISBN (normalised to EAN-13 first); [] when unknown."""
        ean13 = normalise_ean(code)  # IdentifierError (a ValueError) for a bad check digit, before any request
        body = self._get("lookup", {"upc": ean13}, what=f"barcode {ean13}")
        return [normalise_item(item) for item in _items(body)]

    def search(self, text: str, *, offset: int = 0) -> list[Candidate]:
        """Items whose title matches (one page of up to 10, UPCitemdb's order)."""
        text = " ".join(str(text or "").split())
        if not text:
            return []
        params: dict[str, Any] = {"s": text, "match_mode": 0, "type": "product"}
        if offset:
            params["offset"] = offset
        return [normalise_item(item) for item in _items(self._get("search", params, what="search results"))]

    # -- internals ---------------------------------------------------------------------------------------------

    def _get(self, function: str, params: dict[str, Any], *, what: str) -> dict[str, Any]:
        path = f"{self.prefix}/{function}"
        try:
            body = self.http.get_json(path, params=params)
        except NotFoundAt:
            return {"code": "NOT_FOUND", "total": 0, "offset": 0, "items": []}  # UPCitemdb's 404: no match
        except BadCredentials as exc:
            failure: ProviderError = BadCredentials(self.provider, "UPCitemdb refused the API key; check it on "
                                                                   f"the Barcodes card ({exc.message})")
        else:
            failure_in_body = error_from_body(body, f"GET {path}", provider=self.provider)
            if failure_in_body is None:
                return body
            failure = failure_in_body
        raise failure


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    items = body.get("items", [])
    if not isinstance(items, list):
        raise BadResponse(PROVIDER, "the answer's items is not a list")
    return [item for item in items if isinstance(item, dict)]


# --- UPCitemdb JSON → Candidate: the one place ----------------------------------------------------------------------


def normalise_item(item: dict[str, Any]) -> Candidate:
    """An item of a lookup or search answer (ean, title, upc, asin, description, brand, model, category, images…)."""
    if not isinstance(item, dict):
        raise BadResponse(PROVIDER, "an item is not a JSON object")
    barcode = clean_text(item.get("ean")) or clean_text(item.get("upc"))
    title = clean_text(item.get("title"))
    if barcode is None or title is None:
        raise BadResponse(PROVIDER, "an item without an ean or a title")
    images = item.get("images") if isinstance(item.get("images"), list) else []
    return product_candidate(PROVIDER, Product(
        barcode=barcode, title=title, category=clean_text(item.get("category")), brand=clean_text(item.get("brand")),
        description=clean_text(item.get("description")), asin=clean_text(item.get("asin")), images=images,
        extra={"model": clean_text(item.get("model"))},
    ))


# --- as a metadata provider (collectz.providers.base) ----------------------------------------------------------


class UpcitemdbProvider(BarcodeProvider):
    """UPCitemdb as the barcode lookup uses it: any product, typed by its category."""

    key = PROVIDER

    def search(self, query: SearchQuery, *, limit: int = 10) -> list[Candidate]:
        """Products by title; a media type keeps those whose category says that type."""
        found = self.client.search(query.title)
        if query.media_type:
            found = [c for c in found if c.media_type == query.media_type]
        return found[:limit]

    def details(self, candidate: Candidate) -> Candidate:
        """A search result already says all UPCitemdb knows."""
        return candidate


def build(config: ProviderConfig, *, throttle: Throttle | None = None) -> UpcitemdbProvider:
    """The provider for the saved Barcodes card (its base URL, when set, is the address: e.g. a local fake)."""
    return UpcitemdbProvider(UpcitemdbClient.from_config(config, throttle=throttle))


__all__ = ["DEFAULT_BASE_URL", "PROVIDER", "UpcitemdbClient", "UpcitemdbProvider", "build", "error_from_body",
           "normalise_item"]
