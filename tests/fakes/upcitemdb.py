"""A local fake of UPCitemdb's lookup and search API (tests never reach the internet).

Shaped on UPCitemdb's developer documentation (devs.upcitemdb.com, and upcitemdb.com/wp/docs/main/development/:
"Getting started", "Responses", "API rate limits") and the examples of its API explorer:

- GET /prod/trial/lookup?upc=… and /prod/trial/search?s=…&match_mode=0&type=product answer without a key; the
  paid /prod/v1/… endpoints need the headers `user_key: <key>` and `key_type: 3scale` (the API gateway answers a
  wrong key with 403 "Authentication failed" and a missing one with 401 "Authentication parameters missing", as text).
- Success is `{"code": "OK", "total": n, "offset": n, "items": [...]}` (at most 10 items; `offset` is where the
  next page starts, 0 when there is none). Errors are `{"code": "...", "message": "..."}`: 400 INVALID_QUERY
  (missing or bad parameters), 404 NOT_FOUND (no match), 429 EXCEED_LIMIT (daily limit, with Retry-After) or
  TOO_FAST, 500 SERVER_ERR.

Items are recorded in `tests/fakes/upcitemdb/items.json`, in the documented item shape. Serve it with
`serve_upcitemdb(fake)`: Werkzeug's server drops request headers whose names contain "_" (and `user_key` does), so
that server keeps them, under their exact names.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from tests.fakes.server import RunningFake, serve_wsgi

DATA_DIR = Path(__file__).with_name("upcitemdb")
API_KEY = "3f9c4a71d2b84e6c9a0b5d7e1f2a3c4b"
REDACTED = "[redacted]"
MODES = ("ok", "rate_limited", "error", "slow", "malformed")
PAGE_SIZE = 10


HEADER_NAMES = "fake.header_names"  # the environ key holding the request's header names as sent


class KeepUnderscoreHeaders(WSGIRequestHandler):
    """Werkzeug's handler, except that `user_key` and `key_type` reach the app (as HTTP_USER_KEY, HTTP_KEY_TYPE)."""

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        environ[HEADER_NAMES] = list(self.headers.keys())
        for name, value in self.headers.items():
            if "_" in name:
                environ.setdefault("HTTP_" + name.upper().replace("-", "_"), value)
        return environ


@contextmanager
def serve_upcitemdb(app: FakeUpcitemdb) -> Iterator[RunningFake]:
    """`serve_wsgi`, with a request handler that keeps header names with underscores."""
    with serve_wsgi(app, request_handler=KeepUnderscoreHeaders) as running:
        yield running


class FakeUpcitemdb:
    """A WSGI app: `mode` switches failure behaviour, `requests` records (method, path, query, key sent?)."""

    def __init__(self, *, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.mode = "ok"
        self.delay = 1.0
        self.requests: list[tuple[str, str, dict[str, str], bool]] = []
        self.items: list[dict[str, Any]] = json.loads((DATA_DIR / "items.json").read_text(encoding="utf-8"))

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        return self._respond(request)(environ, start_response)

    def _respond(self, request: Request) -> Response:
        keyed = "user_key" in request.environ.get(HEADER_NAMES, ())
        self.requests.append((request.method, request.path, request.args.to_dict(), keyed))
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")
        if self.mode == "slow":
            time.sleep(self.delay)
        if self.mode == "rate_limited":
            return _error(429, "EXCEED_LIMIT", "Exceed the limit of 100 requests per day.", {"Retry-After": "3600"})
        if self.mode == "error":
            return _error(500, "SERVER_ERR", "Internal server error.")
        match = re.fullmatch(r"/prod/(trial|v1)/(lookup|search)", request.path.rstrip("/"))
        if match is None:
            return _error(404, "NOT_FOUND", "No such endpoint.")
        if match[1] == "v1":
            refused = self._refused(request)
            if refused is not None:
                return refused
        if request.method not in ("GET", "POST"):
            return _error(400, "INVALID_QUERY", "Method not supported.")
        response = self._lookup(request) if match[2] == "lookup" else self._search(request)
        if self.mode == "malformed" and response.status_code == 200:
            body = response.get_data()
            response.set_data(body[: max(1, len(body) // 2)])  # a connection cut mid-body
        return response

    def _refused(self, request: Request) -> Response | None:
        """The 3scale gateway in front of the paid plan."""
        names = request.environ.get(HEADER_NAMES, ())
        key = request.headers.get("user_key") if "user_key" in names else None
        if not key or "key_type" not in names or request.headers.get("key_type") != "3scale":
            return Response("Authentication parameters missing", status=401, content_type="text/plain")
        if key != self.api_key:
            return Response("Authentication failed", status=403, content_type="text/plain")
        return None

    def _lookup(self, request: Request) -> Response:
        code = request.args.get("upc", "").strip()
        if not re.fullmatch(r"\d{8,14}", code):
            return _error(400, "INVALID_QUERY", "upc is missing or not a valid UPC, EAN, GTIN or ISBN.")
        wanted = code.zfill(13)[-13:]
        found = [item for item in self.items if wanted in (item.get("ean"), str(item.get("upc", "")).zfill(13))]
        if not found:
            return _error(404, "NOT_FOUND", "No match was found.")
        return _json({"code": "OK", "total": len(found), "offset": 0, "items": found})

    def _search(self, request: Request) -> Response:
        text = " ".join(request.args.get("s", "").split()).casefold()
        if not text:
            return _error(400, "INVALID_QUERY", "s is required.")
        try:
            offset = int(request.args.get("offset", "0"))
        except ValueError:
            return _error(400, "INVALID_QUERY", "offset must be a number.")
        found = [item for item in self.items if all(w in item["title"].casefold() for w in text.split())]
        page = found[offset: offset + PAGE_SIZE]
        following = offset + PAGE_SIZE if offset + PAGE_SIZE < len(found) else 0
        return _json({"code": "OK", "total": len(found), "offset": following, "items": page})


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, headers=headers or {},
                    content_type="application/json")


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"code": code, "message": message}, status, headers)
