"""A local fake of the Barcode Lookup API v3 (tests never reach the internet).

Shaped on Barcode Lookup's API documentation (www.barcodelookup.com/api-documentation): GET /v3/products with the
account's `key` (required) and one of `barcode` (7, 8, 10, 11, 12, 13 or 14 digits), `search`, `title`; `formatted=y`
only beautifies. The answer is `{"products": [{"barcode_number", "barcode_formats", "mpn", "model", "asin", "title",
"category", "manufacturer", "brand", "contributors": [{"role", "name"}], …, "release_date", "description", "features",
"images", "last_update", "stores", "reviews"}]}`. Response codes as documented: 403 for an invalid key, 404 when no
data is returned, 429 past the plan's call limits, 5xx for the service's own trouble.

Products are recorded in `tests/fakes/barcodelookup/products.json`, in the documented shape.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

DATA_DIR = Path(__file__).with_name("barcodelookup")
API_KEY = "isDzhm4Kav42OD93NEOb7x"
REDACTED = "[redacted]"
MODES = ("ok", "rate_limited", "error", "slow", "malformed")
PAGE_SIZE = 10


class FakeBarcodeLookup:
    """A WSGI app: `mode` switches failure behaviour, `requests` records (method, path, query with the key
    redacted)."""

    def __init__(self, *, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.mode = "ok"
        self.delay = 1.0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.products: list[dict[str, Any]] = json.loads((DATA_DIR / "products.json").read_text(encoding="utf-8"))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        return self._respond(request)(environ, start_response)

    def _respond(self, request: Request) -> Response:
        query = request.args.to_dict()
        if "key" in query:
            query["key"] = REDACTED
        self.requests.append((request.method, request.path, query))
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")
        if self.mode == "slow":
            time.sleep(self.delay)
        if self.mode == "rate_limited":
            return _text("Too many requests: you have exceeded your plan's API call limit.", 429,
                         {"Retry-After": "60"})
        if self.mode == "error":
            return _text("Internal server error.", 500)
        if request.path.rstrip("/") != "/v3/products" or request.method != "GET":
            return _text("Not found.", 404)
        if request.args.get("key") != self.api_key:
            return _text("Invalid API key.", 403)
        response = self._products(request)
        if self.mode == "malformed" and response.status_code == 200:
            body = response.get_data()
            response.set_data(body[: max(1, len(body) // 2)])  # a connection cut mid-body
        return response

    def _products(self, request: Request) -> Response:
        barcode = request.args.get("barcode")
        if barcode is not None:
            if not re.fullmatch(r"\d{7,8}|\d{10,14}", barcode):
                return _text("Barcode value must be 7, 8, 10, 11, 12, 13 or 14 digits long.", 400)
            found = [p for p in self.products if p["barcode_number"].zfill(14) == barcode.zfill(14)]
        else:
            words = " ".join((request.args.get("search") or request.args.get("title") or "").split()).casefold()
            if not words:
                return _text("Missing search parameters.", 400)
            found = [p for p in self.products if all(w in _searchable(p) for w in words.split())]
        if not found:
            return _text("No data returned.", 404)
        return _json({"products": found[:PAGE_SIZE]})


def _searchable(product: dict[str, Any]) -> str:
    return " ".join(str(product.get(k, "")) for k in ("title", "category", "brand", "mpn")).casefold()


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, content_type="application/json")


def _text(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(message, status=status, headers=headers or {}, content_type="text/plain")
