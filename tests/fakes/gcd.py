"""A local fake of the Grand Comics Database API (https://www.comics.org/api/), answering like GCD's own code does.

Documentation followed: the gcd-django wiki "API" page and the code it points to — apps/api/urls.py (routes
`issue/{id}/`, `series/{id}/`, `publisher/`, `series/name/{name}/[year/{year}/]`,
`series/name/{name}/issue/{number}/[year/{year}/]`), apps/api/views.py (name `icontains`, exact number, key date
starting with the year, series by `year_began`) and apps/api/serializers.py (IssueSerializer, IssueOnlySerializer,
SeriesSerializer field lists) — plus Django REST framework's documented behaviour: PageNumberPagination's
`count/next/previous/results` envelope and `{"detail": "Invalid page."}`, `{"detail": …}` errors, 429 +
Retry-After when throttled, and the browsable HTML page unless `format=json` is asked. Documents are in
`tests/fakes/gcd/`, based on the values Grayven's tests record for issue 242700 (Green Lantern 2005 #1).
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
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

DATA_DIR = Path(__file__).with_name("gcd")
PAGE_SIZE = 10
MODES = ("ok", "rate_limited", "error", "slow", "malformed")
ISSUE_ONLY_KEYS = ("api_url", "series_name", "descriptor", "publication_date", "price", "page_count", "variant_of",
                   "series")
_SERIES_NAME = re.compile(r"^(.*?)\s*\((\d{4}) series\)$")


class FakeGcd:
    """A WSGI app: `mode` switches failure behaviour, `requests` records (method, path, query);
    `require_login` makes it refuse anonymous calls as a DRF API closed to them does."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.delay = 1.0
        self.require_login = False
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.user_agents: list[str] = []
        self.issues: dict[int, dict[str, Any]] = {}
        self.series: dict[int, dict[str, Any]] = {}
        self.publishers: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        for path in sorted(DATA_DIR.glob("*.json")):
            kind, number = path.stem.rsplit("_", 1)
            getattr(self, {"issue": "issues", "series": "series", "publisher": "publishers"}[kind])[int(number)] = (
                json.loads(path.read_text(encoding="utf-8")))

    def add_issue(self, issue_id: int, data: dict[str, Any]) -> None:
        with self._lock:
            self.issues[issue_id] = {**copy.deepcopy(data),
                                     "api_url": f"https://www.comics.org/api/issue/{issue_id}/?format=json"}

    # -- WSGI --------------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self._respond(Request(environ))(environ, start_response)

    def _respond(self, request: Request) -> Response:
        self.requests.append((request.method, request.path, request.args.to_dict(flat=True)))
        self.user_agents.append(request.headers.get("User-Agent", ""))
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")
        if self.mode == "slow":
            time.sleep(self.delay)
        if self.mode == "error":
            return Response("<h1>Server Error (500)</h1>", status=500, content_type="text/html")
        if self.require_login:
            return _detail(403, "Authentication credentials were not provided.")
        if self.mode == "rate_limited":
            response = _detail(429, "Request was throttled. Expected available in 2 seconds.")
            response.headers["Retry-After"] = "2"
            return response
        if request.method not in ("GET", "HEAD"):
            return _detail(405, f"Method \"{request.method}\" not allowed.")
        if request.args.get("format") != "json":
            return Response("<!DOCTYPE html><html><body>Django REST framework</body></html>",
                            content_type="text/html; charset=utf-8")
        response = self._route(request)
        if self.mode == "malformed" and response.status_code == 200:
            body = response.get_data()
            response.set_data(body[: max(1, len(body) // 2)])
        return response

    def _route(self, request: Request) -> Response:
        path = request.path  # percent-decoded, as Django routes it
        if not path.startswith("/api/") or not path.endswith("/"):
            return _detail(404, "Not found.")
        rest = path[len("/api/"):-1]
        if match := re.fullmatch(r"(issue|series|publisher)/(\d+)", rest):
            store = {"issue": self.issues, "series": self.series, "publisher": self.publishers}[match[1]]
            document = store.get(int(match[2]))
            return _json(document) if document is not None else _detail(404, "No Issue matches the given query."
                                                                         if match[1] == "issue" else "Not found.")
        if rest == "publisher":
            return self._paged(request, list(self.publishers.values()))
        if match := re.fullmatch(r"series/name/(.+)/issue/(.+)/year/([^/]+)", rest) or re.fullmatch(
                r"series/name/(.+)/issue/(.+)", rest):
            return self._issues(request, *match.groups())
        if match := re.fullmatch(r"series/name/(.+)/year/(\d+)", rest) or re.fullmatch(r"series/name/(.+)", rest):
            return self._series_by_name(request, *match.groups())
        return _detail(404, "Not found.")

    def _issues(self, request: Request, name: str, number: str, year: str | None = None) -> Response:
        """IssuesList: series name icontains, number exact, key_date startswith year; IssueOnlySerializer."""
        found = []
        for _issue_id, issue in sorted(self.issues.items()):
            series_name = _plain_series_name(issue.get("series_name", ""))
            if name.casefold() in series_name.casefold() and issue.get("number") == number and (
                    year is None or str(issue.get("key_date", "")).startswith(year)):
                found.append({key: copy.deepcopy(issue.get(key)) for key in ISSUE_ONLY_KEYS})
        return self._paged(request, found)

    def _series_by_name(self, request: Request, name: str, year: str | None = None) -> Response:
        found = [copy.deepcopy(s) for _id, s in sorted(self.series.items())
                 if name.casefold() in str(s.get("name", "")).casefold()
                 and (year is None or str(s.get("year_began")) == year)]
        return self._paged(request, found)

    def _paged(self, request: Request, items: list[dict[str, Any]]) -> Response:
        """DRF PageNumberPagination: `page` from 1, {"detail": "Invalid page."} past the end."""
        try:
            page = int(request.args.get("page", "1"))
        except ValueError:
            page = 0
        pages = max(1, -(-len(items) // PAGE_SIZE))
        if not 1 <= page <= pages:
            return _detail(404, "Invalid page.")
        base = request.base_url

        def link(number: int) -> str | None:
            if not 1 <= number <= pages:
                return None
            query = {**request.args.to_dict(flat=True), "page": str(number)}
            if number == 1:
                query.pop("page")
            return f"{base}?{urlencode(query)}"

        return _json({"count": len(items), "next": link(page + 1), "previous": link(page - 1),
                      "results": items[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]})


def _plain_series_name(value: str) -> str:
    match = _SERIES_NAME.match(value)
    return match[1] if match else value


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, content_type="application/json")


def _detail(status: int, message: str) -> Response:
    return _json({"detail": message}, status)
