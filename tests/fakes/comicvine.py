"""A local fake of the ComicVine API (https://comicvine.gamespot.com/api/), answering like ComicVine documents it.

Documentation followed: ComicVine's API documentation page (comicvine.gamespot.com/api/documentation): `api_key`
and `format=json` parameters; `/issue/4000-{id}/`, `/volume/4050-{id}/`, `/issues/?filter=field:value,…` (`|`
for several values, `limit` ≤ 100, `offset`, `sort`, `field_list`), `/search/?resources=…&query=…` (`limit`
≤ 10, `page`); the envelope `error, limit, offset, number_of_page_results, number_of_total_results,
status_code, results, version` and its status codes (1 OK, 100 Invalid API Key with HTTP 401, 101 Object Not
Found, 102 Error in URL Format, 104 Filter Error, 107 rate limit with HTTP 420). ComicVine also refuses requests
without a User-Agent. Documents in `tests/fakes/comicvine/` carry the field names Simyan's recorded tests show
(issue 111265, Green Lantern 2005 #1 "Airborne"; issue 6787, The X-Men #2).
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

from werkzeug.wrappers import Request, Response

DATA_DIR = Path(__file__).with_name("comicvine")
DEFAULT_API_KEY = "0123456789abcdef0123456789abcdef01234567"
REDACTED = "[redacted]"
MODES = ("ok", "rate_limited", "velocity", "error", "slow", "malformed")
ISSUE_LIST_KEYS = ("aliases", "api_detail_url", "associated_images", "cover_date", "date_added", "date_last_updated",
                   "deck", "description", "has_staff_review", "id", "image", "issue_number", "name",
                   "site_detail_url", "store_date", "volume")
VOLUME_LIST_KEYS = ("aliases", "api_detail_url", "count_of_issues", "date_added", "date_last_updated", "deck",
                    "description", "first_issue", "id", "image", "last_issue", "name", "publisher",
                    "site_detail_url", "start_year")

OK = (1, "OK")
INVALID_KEY = (100, "Invalid API Key")
NOT_FOUND = (101, "Object Not Found")
URL_FORMAT = (102, "Error in URL Format")
FILTER_ERROR = (104, "Filter Error")
RATE_LIMIT = (107, "Rate limit exceeded.  Slow down cowboy.")


class FakeComicVine:
    """A WSGI app: `mode` switches failure behaviour ("velocity" is ComicVine's own 420), `requests` records
    (method, path, query) with the key redacted."""

    def __init__(self, *, api_key: str = DEFAULT_API_KEY) -> None:
        self.api_key = api_key
        self.mode = "ok"
        self.delay = 1.0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.user_agents: list[str] = []
        self.issues: dict[int, dict[str, Any]] = {}
        self.volumes: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        for path in sorted(DATA_DIR.glob("*.json")):
            kind, number = path.stem.split("_")
            store = self.issues if kind == "issue" else self.volumes
            store[int(number)] = json.loads(path.read_text(encoding="utf-8"))

    def add_issue(self, data: dict[str, Any]) -> None:
        with self._lock:
            self.issues[int(data["id"])] = copy.deepcopy(data)

    # -- WSGI --------------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self._respond(Request(environ))(environ, start_response)

    def _respond(self, request: Request) -> Response:
        query = request.args.to_dict(flat=True)
        if "api_key" in query:
            query["api_key"] = REDACTED
        self.requests.append((request.method, request.path, query))
        self.user_agents.append(request.headers.get("User-Agent", ""))
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")
        if self.mode == "slow":
            time.sleep(self.delay)
        if self.mode == "error":
            return Response("<html><body><h1>500 Internal Server Error</h1></body></html>", status=500,
                            content_type="text/html")
        if self.mode == "rate_limited":  # a front proxy's answer: 429 with Retry-After
            return Response("Too Many Requests", status=429, headers={"Retry-After": "2"}, content_type="text/plain")
        if not request.headers.get("User-Agent"):
            return Response("<html><body>Forbidden</body></html>", status=403, content_type="text/html")
        if request.args.get("api_key") != self.api_key:
            return _envelope(INVALID_KEY, [], status=401)
        if self.mode == "velocity":
            return _envelope(RATE_LIMIT, [], status=420)
        response = self._route(request)
        if self.mode == "malformed" and response.status_code == 200:
            body = response.get_data()
            response.set_data(body[: max(1, len(body) // 2)])
        return response

    def _route(self, request: Request) -> Response:
        path = request.path
        if request.args.get("format") != "json":
            return Response("<?xml version=\"1.0\"?><response><error>OK</error></response>",
                            content_type="application/xml")
        if match := re.fullmatch(r"/api/(issue|volume)/(\d+)-(\d+)/", path):
            prefix = {"issue": "4000", "volume": "4050"}[match[1]]
            store = self.issues if match[1] == "issue" else self.volumes
            document = store.get(int(match[3])) if match[2] == prefix else None
            if document is None:
                return _envelope(NOT_FOUND, [])
            return _envelope(OK, _fields(document, request.args.get("field_list")), limit=1)
        if path == "/api/issues/":
            return self._issue_list(request)
        if path == "/api/search/":
            return self._search(request)
        return Response("<html><body>Page not found</body></html>", status=404, content_type="text/html")

    def _issue_list(self, request: Request) -> Response:
        try:
            filters = _filters(request.args.get("filter", ""))
            limit = min(100, int(request.args.get("limit", "100")))
            offset = int(request.args.get("offset", "0"))
        except ValueError:
            return _envelope(FILTER_ERROR, [])
        found = []
        for issue in sorted(self.issues.values(), key=lambda i: (str(i.get("cover_date")), i["id"])):
            volume = str((issue.get("volume") or {}).get("id"))
            if "volume" in filters and volume not in filters["volume"]:
                continue
            if "issue_number" in filters and str(issue.get("issue_number")) not in filters["issue_number"]:
                continue
            if "id" in filters and str(issue["id"]) not in filters["id"]:
                continue
            found.append({key: copy.deepcopy(issue.get(key)) for key in ISSUE_LIST_KEYS})
        page = [_fields(item, request.args.get("field_list")) for item in found[offset: offset + limit]]
        return _envelope(OK, page, limit=limit, offset=offset, total=len(found))

    def _search(self, request: Request) -> Response:
        resources = request.args.get("resources", "")
        query = " ".join(request.args.get("query", "").split()).casefold()
        if not query:
            return _envelope(URL_FORMAT, [])
        try:
            limit = min(10, int(request.args.get("limit", "10")))
            page = max(1, int(request.args.get("page", "1")))
        except ValueError:
            return _envelope(URL_FORMAT, [])
        words = query.split()
        found: list[dict[str, Any]] = []
        if "volume" in resources:
            found += [{**{k: copy.deepcopy(v.get(k)) for k in VOLUME_LIST_KEYS}, "resource_type": "volume"}
                      for v in self.volumes.values() if all(w in str(v.get("name", "")).casefold() for w in words)]
        if "issue" in resources:
            for issue in self.issues.values():
                text = f"{(issue.get('volume') or {}).get('name', '')} {issue.get('name') or ''}".casefold()
                if all(w in text for w in words):
                    found.append({**{k: copy.deepcopy(issue.get(k)) for k in ISSUE_LIST_KEYS},
                                  "resource_type": "issue"})
        results = found[(page - 1) * limit: page * limit]
        return _envelope(OK, results, limit=limit, offset=(page - 1) * limit, total=len(found))


def _filters(text: str) -> dict[str, set[str]]:
    """`field:value|value,field:value` → {field: {values}}; a pair without ':' is a filter error."""
    filters: dict[str, set[str]] = {}
    for pair in filter(None, text.split(",")):
        field, sep, values = pair.partition(":")
        if not sep:
            raise ValueError(pair)
        filters[field.strip()] = {v.strip() for v in values.split("|")}
    return filters


def _fields(document: dict[str, Any], field_list: str | None) -> dict[str, Any]:
    if not field_list:
        return copy.deepcopy(document)
    wanted = {name.strip() for name in field_list.split(",")}
    return {key: copy.deepcopy(value) for key, value in document.items() if key in wanted}


def _envelope(outcome: tuple[int, str], results: Any, *, limit: int = 0, offset: int = 0, total: int | None = None,
              status: int = 200) -> Response:
    """ComicVine's one envelope; an error carries no results' counts."""
    code, error = outcome
    count = len(results) if isinstance(results, list) else 1
    body = {"error": error, "limit": limit, "offset": offset, "number_of_page_results": count if code == 1 else 0,
            "number_of_total_results": (total if total is not None else count) if code == 1 else 0,
            "status_code": code, "results": results, "version": "1.0"}
    return Response(json.dumps(body, ensure_ascii=False), status=status,
                    content_type="application/json; charset=utf-8")
