"""A local fake of Open Library's Books API and Search API, answering like Open Library documents them.

Documentation: https://openlibrary.org/dev/docs/api/books (Books API: `/api/books?bibkeys=…&jscmd=data&format=json`,
a JSON object keyed by the bibkeys asked for that Open Library knows — `{}` when it knows none, with HTTP 200) and
https://openlibrary.org/dev/docs/api/search (`/search.json`: `title`, `author`, `publisher`, `q`, `fields`,
`limit`, `page`, `offset`; the envelope `numFound`, `start`, `numFoundExact`, `docs`, `num_found`, `q`, `offset`).
The "data" documents in `tests/fakes/openlibrary/editions.json` have the shape the Books API builds
(openlibrary/plugins/books/dynlinks.py: authors and subjects from the work, empty values trimmed); the documentation's
own example ISBN 0451526538 (Tom Sawyer) is one of them. `works.json` holds search documents (works).

    fake = FakeOpenLibrary()
    with serve_wsgi(fake) as running:
        client = OpenLibraryClient(HttpClient("openlibrary", running.url, allow_private=True))

`mode`: "ok", "error" (500, Open Library's HTML error page), "rate_limited" (429 + Retry-After), "slow" (sleeps
`delay` seconds first), "malformed" (the JSON is cut off mid-body) or "forbidden" (403, what Open Library's front
end answers a client it has blocked — the nearest thing to refused credentials for an API without keys).
`requests` logs (method, path, query, User-Agent).
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from stdnum import isbn as stdnum_isbn
from werkzeug.wrappers import Request, Response

DATA_DIR = Path(__file__).with_name("openlibrary")
MODES = ("ok", "error", "rate_limited", "slow", "malformed", "forbidden")
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
# Fields a search doc carries when `fields` is not given (WorkSearchScheme.default_fetched_fields, trimmed to what
# the recorded docs hold).
DEFAULT_FIELDS = ("key", "author_name", "author_key", "title", "subtitle", "edition_count", "has_fulltext",
                  "first_publish_year", "cover_i", "cover_edition_key", "public_scan_b", "language")
ERROR_PAGE = "<html><head><title>Internal error</title></head><body><h1>Internal Error</h1></body></html>"
FORBIDDEN_PAGE = "<html><head><title>403 Forbidden</title></head><body><h1>403 Forbidden</h1></body></html>"
TOO_MANY_PAGE = "<html><head><title>429 Too Many Requests</title></head><body><h1>429 Too Many Requests</h1>" \
                "</body></html>"


class FakeOpenLibrary:
    """A WSGI app: `mode` switches failure behaviour, `requests` records what was asked."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.delay = 1.0
        self.requests: list[tuple[str, str, dict[str, str], str]] = []
        self.editions: dict[str, dict[str, Any]] = {}
        self.works: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        for edition in _load("editions.json"):
            self.add_edition(edition)
        for work in _load("works.json"):
            self.add_work(work)

    # -- set-up ------------------------------------------------------------------------------------------------

    def add_edition(self, data: dict[str, Any]) -> None:
        """Add or replace an edition: its Books API "data" document."""
        with self._lock:
            self.editions[data["key"].rsplit("/", 1)[-1]] = copy.deepcopy(data)

    def add_work(self, doc: dict[str, Any]) -> None:
        """Add a search document (a work, with every field the search index holds for it)."""
        with self._lock:
            self.works.append(copy.deepcopy(doc))

    # -- WSGI --------------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        return self._respond(request)(environ, start_response)

    def _respond(self, request: Request) -> Response:
        self.requests.append((request.method, request.path, request.args.to_dict(flat=True),
                              request.headers.get("User-Agent", "")))
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")
        if self.mode == "slow":
            time.sleep(self.delay)
        if self.mode == "rate_limited":
            return Response(TOO_MANY_PAGE, status=429, content_type="text/html", headers={"Retry-After": "3"})
        if self.mode == "error":
            return Response(ERROR_PAGE, status=500, content_type="text/html")
        if self.mode == "forbidden":
            return Response(FORBIDDEN_PAGE, status=403, content_type="text/html")
        if request.path == "/api/books":
            response = self._books(request)
        elif request.path == "/search.json":
            response = self._search(request)
        else:
            response = Response("<html><body><h1>404 - Page Not Found</h1></body></html>", status=404,
                                content_type="text/html")
        if self.mode == "malformed" and response.status_code == 200:
            body = response.get_data()
            response.set_data(body[: max(1, len(body) // 2)])  # a connection cut mid-body
        return response

    # -- endpoints ---------------------------------------------------------------------------------------------

    def _books(self, request: Request) -> Response:
        """Books API: every bibkey found, under the key as asked; unknown ones are left out."""
        result: dict[str, Any] = {}
        for bibkey in (key.strip() for key in request.args.get("bibkeys", "").split(",")):
            edition = self._edition_for(bibkey)
            if edition is not None:
                result[bibkey] = self._view(edition, bibkey, request.args.get("jscmd", "viewapi"))
        if request.args.get("format", "").lower() == "json":
            return _json(result)
        callback = request.args.get("callback")
        script = json.dumps(result) if callback else f"var _OLBookInfo = {json.dumps(result)};"
        return Response(script, content_type="application/javascript")

    def _edition_for(self, bibkey: str) -> dict[str, Any] | None:
        kind, _sep, value = bibkey.partition(":")
        kind, value = kind.strip().lower(), value.strip()
        if kind == "olid":
            return self.editions.get(value.upper())
        if kind == "isbn":
            wanted = _isbn13(value.replace("-", ""))
            return next((e for e in self.editions.values() if wanted and wanted in _edition_isbns(e)), None)
        if kind in ("lccn", "oclc"):
            return next((e for e in self.editions.values()
                         if value in e.get("identifiers", {}).get(kind, [])), None)
        return None

    def _view(self, edition: dict[str, Any], bibkey: str, jscmd: str) -> dict[str, Any]:
        if jscmd == "data":
            return copy.deepcopy(edition)
        view = {"bib_key": bibkey, "info_url": edition["url"], "preview": "noview", "preview_url": edition["url"]}
        if edition.get("cover"):
            view["thumbnail_url"] = edition["cover"]["small"]
        return view

    def _search(self, request: Request) -> Response:
        args = request.args
        try:
            limit = min(int(args.get("limit", DEFAULT_LIMIT)), MAX_LIMIT)
            page = int(args.get("page", "1"))
            offset = int(args["offset"]) if "offset" in args else (page - 1) * limit
        except ValueError:
            return _json({"error": "invalid literal for int() with base 10"}, 500)
        found = [work for work in self.works if _work_matches(work, args)]
        wanted = [f.strip() for f in args.get("fields", "").split(",") if f.strip()] or list(DEFAULT_FIELDS)
        docs = [{k: v for k, v in work.items() if "*" in wanted or k in wanted}
                for work in found[offset: offset + limit]]
        q = args.get("q", "")
        return _json({"numFound": len(found), "start": offset, "numFoundExact": True, "num_found": len(found),
                      "documentation_url": "https://openlibrary.org/dev/docs/api/search", "q": q,
                      "offset": args.get("offset") and offset, "docs": docs})


# --- helpers ---------------------------------------------------------------------------------------------------


def _load(name: str) -> Any:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, content_type="application/json")


def _isbn13(value: str) -> str | None:
    try:
        return stdnum_isbn.to_isbn13(stdnum_isbn.validate(value))
    except Exception:  # noqa: BLE001 - any invalid ISBN is simply not indexed
        return None


def _edition_isbns(edition: dict[str, Any]) -> set[str]:
    """Open Library's `isbn_` index holds both forms of every ISBN an edition lists."""
    ids = edition.get("identifiers", {})
    return {n for raw in ids.get("isbn_10", []) + ids.get("isbn_13", []) if (n := _isbn13(raw))}


def _words(text: str) -> list[str]:
    return "".join(c if c.isalnum() else " " for c in text.casefold()).split()


def _has_words(wanted: str, *values: Any) -> bool:
    """Every word asked for appears in one of the values (Solr's AND of terms, without stemming)."""
    have: set[str] = set()
    for value in values:
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                have.update(_words(item))
    return all(word in have for word in _words(wanted))


def _work_matches(work: dict[str, Any], args: Any) -> bool:
    checks = {"title": (work.get("title"), work.get("subtitle")), "author": (work.get("author_name"),),
              "publisher": (work.get("publisher"),),
              "q": (work.get("title"), work.get("subtitle"), work.get("author_name"))}
    asked = {name: args[name] for name in checks if args.get(name, "").strip()}
    return bool(asked) and all(_has_words(value, *checks[name]) for name, value in asked.items())
