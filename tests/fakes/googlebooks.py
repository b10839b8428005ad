"""A local fake of the Google Books API v1 (volumes), answering like Google documents it.

Documentation: https://developers.google.com/books/docs/v1/using ("Performing a search": `q` with the `intitle:`,
`inauthor:`, `inpublisher:`, `isbn:` keywords; `maxResults` 0–40, `startIndex`, `printType`; the `books#volumes`
envelope with `totalItems` and — only when something matched — `items`; "Retrieving a specific volume") and
https://developers.google.com/books/docs/v1/reference/volumes (the Volume resource). Errors use Google's JSON error
shape (https://cloud.google.com/apis/design/errors): a refused key is 400 `API_KEY_INVALID`, a spent quota 429
`RESOURCE_EXHAUSTED` (older answers: 403 `dailyLimitExceeded`), an unknown volume 404.

The recorded volumes in `tests/fakes/googlebooks/` are Volume resources as /volumes/{id} answers them (the Google
Story one is the documentation's own example); a search answers the lighter list form Google sends (thumbnails only,
top-level categories), derived from them.

    fake = FakeGoogleBooks(api_key="...")
    with serve_wsgi(fake) as running: ...

A `key` is optional, as with Google; a wrong one is refused. `mode`: "ok", "error" (500), "rate_limited" (429 +
Retry-After), "daily_limit" (the older 403 form of a spent quota), "slow" (sleeps `delay`), "malformed" (the JSON
is cut off mid-body). `requests` logs (method, path, query) with the key replaced by "[redacted]".
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from stdnum import isbn as stdnum_isbn
from werkzeug.wrappers import Request, Response

DATA_DIR = Path(__file__).with_name("googlebooks")
DEFAULT_API_KEY = "AIzaSyFakeKeyForCollectzTests0123456789"
REDACTED = "[redacted]"
MODES = ("ok", "error", "rate_limited", "daily_limit", "slow", "malformed")
LIST_IMAGE_SIZES = ("smallThumbnail", "thumbnail")
_TERM = re.compile(r'(?:(\w+):)?(?:"([^"]*)"|(\S+))')


class FakeGoogleBooks:
    """A WSGI app: `mode` switches failure behaviour, `requests` records what was asked (key redacted)."""

    def __init__(self, *, api_key: str = DEFAULT_API_KEY) -> None:
        self.api_key = api_key
        self.mode = "ok"
        self.delay = 1.0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.volumes: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        for path in sorted(DATA_DIR.glob("*.json")):
            self.add_volume(json.loads(path.read_text(encoding="utf-8")))

    def add_volume(self, volume: dict[str, Any]) -> None:
        """Add or replace a volume (the /volumes/{id} resource)."""
        with self._lock:
            self.volumes[volume["id"]] = copy.deepcopy(volume)

    # -- WSGI --------------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        return self._respond(request)(environ, start_response)

    def _respond(self, request: Request) -> Response:
        query = request.args.to_dict(flat=True)
        if "key" in query:
            query["key"] = REDACTED
        self.requests.append((request.method, request.path, query))
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")
        if self.mode == "slow":
            time.sleep(self.delay)
        if "key" in request.args and request.args["key"] != self.api_key:
            return _error(400, "API key not valid. Please pass a valid API key.", "badRequest", "INVALID_ARGUMENT",
                          info="API_KEY_INVALID")
        if self.mode == "rate_limited":
            response = _error(429, "Quota exceeded for quota metric 'Queries' and limit 'Queries per day' of "
                                   "service 'books.googleapis.com'.", "rateLimitExceeded", "RESOURCE_EXHAUSTED",
                              info="RATE_LIMIT_EXCEEDED")
            response.headers["Retry-After"] = "30"
            return response
        if self.mode == "daily_limit":
            return _error(403, "Daily Limit Exceeded", "dailyLimitExceeded", "PERMISSION_DENIED")
        if self.mode == "error":
            return _error(500, "Internal error encountered.", "backendError", "INTERNAL")
        response = self._route(request)
        if self.mode == "malformed" and response.status_code == 200:
            body = response.get_data()
            response.set_data(body[: max(1, len(body) // 2)])  # a connection cut mid-body
        return response

    def _route(self, request: Request) -> Response:
        if request.method != "GET":
            return _error(405, "Method not allowed", "methodNotAllowed", "INVALID_ARGUMENT")
        path = request.path.rstrip("/")
        if path == "/books/v1/volumes":
            return self._search(request)
        match = re.fullmatch(r"/books/v1/volumes/([^/]+)", path)
        if match:
            volume = self.volumes.get(match[1])
            if volume is None:
                return _error(404, "The volume ID could not be found.", "notFound", "NOT_FOUND")
            return _json(volume)
        return _error(404, "Not Found", "notFound", "NOT_FOUND")

    # -- endpoints ---------------------------------------------------------------------------------------------

    def _search(self, request: Request) -> Response:
        q = request.args.get("q", "").strip()
        if not q:
            return _error(400, "Missing query.", "queryRequired", "INVALID_ARGUMENT")
        try:
            max_results = int(request.args.get("maxResults", "10"))
            start = int(request.args.get("startIndex", "0"))
        except ValueError:
            return _error(400, "Invalid value", "invalid", "INVALID_ARGUMENT")
        if not 0 <= max_results <= 40:
            return _error(400, "Values must be within the range: [0, 40]", "invalid", "INVALID_ARGUMENT")
        print_type = request.args.get("printType", "all").lower()
        found = [v for v in self.volumes.values() if _matches(v, q)
                 and (print_type == "all" or v["volumeInfo"].get("printType", "BOOK").lower() == print_type[:-1])]
        body: dict[str, Any] = {"kind": "books#volumes", "totalItems": len(found)}
        page = found[start: start + max_results]
        if page:
            body["items"] = [_list_form(volume) for volume in page]
        return _json(body)


# --- helpers ---------------------------------------------------------------------------------------------------


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status,
                    content_type="application/json; charset=UTF-8")


def _error(code: int, message: str, reason: str, status: str, *, info: str | None = None) -> Response:
    """Google's JSON error body: {"error": {"code", "message", "errors": [...], "status", "details"?}}."""
    error: dict[str, Any] = {"code": code, "message": message,
                             "errors": [{"message": message, "domain": "global", "reason": reason}],
                             "status": status}
    if info:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": info,
                             "domain": "googleapis.com", "metadata": {"service": "books.googleapis.com"}}]
    return _json({"error": error}, code)


def _list_form(volume: dict[str, Any]) -> dict[str, Any]:
    """A volume as a search lists it: thumbnails only, top-level categories, a text snippet."""
    item = copy.deepcopy(volume)
    info = item["volumeInfo"]
    info.pop("mainCategory", None)
    info.pop("dimensions", None)
    if "imageLinks" in info:
        info["imageLinks"] = {k: v for k, v in info["imageLinks"].items() if k in LIST_IMAGE_SIZES}
    if "categories" in info:
        info["categories"] = list(dict.fromkeys(c.split(" / ")[0] for c in info["categories"]))
    if info.get("description"):
        item["searchInfo"] = {"textSnippet": info["description"][:80]}
    return item


def _words(value: Any) -> set[str]:
    items = value if isinstance(value, list) else [value]
    return {w for item in items if isinstance(item, str)
            for w in "".join(c if c.isalnum() else " " for c in item.casefold()).split()}


def _isbns(info: dict[str, Any]) -> set[str]:
    found = set()
    for entry in info.get("industryIdentifiers", []):
        try:
            found.add(stdnum_isbn.to_isbn13(stdnum_isbn.validate(entry["identifier"])))
        except Exception:  # noqa: BLE001, S112 - an invalid recorded ISBN is simply not indexed
            continue
    return found


def _matches(volume: dict[str, Any], q: str) -> bool:
    """Every term of `q` matches: keyword terms their field, bare words anywhere in title, authors or description."""
    info = volume["volumeInfo"]
    fields = {"intitle": _words([info.get("title"), info.get("subtitle")]), "inauthor": _words(info.get("authors")),
              "inpublisher": _words(info.get("publisher"))}
    anywhere = fields["intitle"] | fields["inauthor"] | _words(info.get("description"))
    for keyword, quoted, bare in _TERM.findall(q):
        text = quoted or bare
        if keyword == "isbn":
            try:
                if stdnum_isbn.to_isbn13(stdnum_isbn.validate(text)) not in _isbns(info):
                    return False
            except Exception:  # noqa: BLE001 - an invalid ISBN matches nothing
                return False
        elif not _words(text) <= fields.get(keyword, anywhere):
            return False
    return True
