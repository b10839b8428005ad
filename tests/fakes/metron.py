"""A local fake of Metron's REST API (https://metron.cloud/api/), answering like Metron documents it.

Documentation followed: the Metron project's API guide (api/README.md: Basic auth on every endpoint, the issue
filters `series_name` (all words, case-insensitive), `number` (exact, case-insensitive), `cover_year`,
`publisher_name` (partial) and `upc` (exact), the paging envelope `count/next/previous/results`, DRF error bodies
`{"detail": …}`) and its rate-limit guide (api/RATELIMIT.md: 429 + Retry-After + the detail sentence). Issue
documents are shaped on Metron's IssueReadSerializer / IssueListSerializer field lists; the list entries are
derived from the detail documents in `tests/fakes/metron/`, so every view of an issue agrees.

    fake = FakeMetron()
    with serve_wsgi(fake) as running:
        ...  # Basic auth with fake.username / fake.password
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

DATA_DIR = Path(__file__).with_name("metron")
DEFAULT_USERNAME = "collector"
DEFAULT_PASSWORD = "s3cret pass:word"  # a space and a colon: Basic auth must still carry it whole
PAGE_SIZE = 25
MODES = ("ok", "rate_limited", "error", "slow", "malformed")
LIST_KEYS = ("id", "series", "number", "issue", "cover_date", "store_date", "image", "cover_hash", "modified")

NOT_PROVIDED = (401, "Authentication credentials were not provided.")
INVALID_LOGIN = (401, "Invalid username/password.")
NOT_FOUND = (404, "Not found.")
THROTTLED = (429, "Request was throttled. Expected available in 2 seconds.")
SERVER_ERROR = (500, "A server error occurred.")
METHOD_NOT_ALLOWED = (405, "Method \"POST\" not allowed.")


class FakeMetron:
    """A WSGI app: `mode` switches failure behaviour, `requests` records (method, path, query) — never a secret."""

    def __init__(self, *, username: str = DEFAULT_USERNAME, password: str = DEFAULT_PASSWORD) -> None:
        self.username = username
        self.password = password
        self.mode = "ok"
        self.delay = 1.0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.user_agents: list[str] = []
        self.issues: dict[int, dict[str, Any]] = {}
        self._lock = threading.Lock()
        for path in sorted(DATA_DIR.glob("issue_*.json")):
            self.add_issue(json.loads(path.read_text(encoding="utf-8")))

    def add_issue(self, data: dict[str, Any]) -> None:
        """Add or replace an issue (an /api/issue/{id}/ document)."""
        with self._lock:
            self.issues[int(data["id"])] = copy.deepcopy(data)

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
            return _detail(SERVER_ERROR)
        auth = self._auth_error(request)
        if auth is not None:
            return auth
        if self.mode == "rate_limited":
            response = _detail(THROTTLED)
            response.headers["Retry-After"] = "2"
            return response
        if request.method not in ("GET", "HEAD"):
            return _detail(METHOD_NOT_ALLOWED)
        response = self._route(request)
        if self.mode == "malformed" and response.status_code == 200:
            body = response.get_data()
            response.set_data(body[: max(1, len(body) // 2)])
        return response

    def _auth_error(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            response = _detail(NOT_PROVIDED)
        else:
            try:
                user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                user, password = "", ""
            if (user, password) == (self.username, self.password):
                return None
            response = _detail(INVALID_LOGIN)
        response.headers["WWW-Authenticate"] = 'Basic realm="api"'
        return response

    def _route(self, request: Request) -> Response:
        path = request.path
        if path == "/api/issue/":
            return self._issue_list(request)
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[:2] == ["api", "issue"] and path.endswith("/"):
            issue = self.issues.get(int(parts[2])) if parts[2].isdigit() else None
            return _json(issue) if issue is not None else _detail(NOT_FOUND)
        return _detail(NOT_FOUND)

    def _issue_list(self, request: Request) -> Response:
        args = request.args
        try:
            page = int(args.get("page", "1"))
        except ValueError:
            page = 0
        found = [_list_item(issue) for issue in sorted(self.issues.values(), key=_sort_key)
                 if _matches(issue, args)]
        pages = max(1, -(-len(found) // PAGE_SIZE))
        if not 1 <= page <= pages:
            return _detail((404, "Invalid page."))
        query = {key: value for key, value in args.items() if key != "page"}
        base = f"{request.host_url.rstrip('/')}/api/issue/"

        def link(number: int) -> str | None:
            if not 1 <= number <= pages:
                return None
            return f"{base}?{urlencode({**query, 'page': number})}" if number > 1 else (
                f"{base}?{urlencode(query)}" if query else base)

        return _json({"count": len(found), "next": link(page + 1), "previous": link(page - 1),
                      "results": found[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]})


def _matches(issue: dict[str, Any], args: Any) -> bool:
    """Metron's issue filters, as its API guide describes them."""
    series = issue.get("series") or {}
    if "series_name" in args:
        words = args["series_name"].casefold().split()
        name = str(series.get("name", "")).casefold()
        if not all(word in name for word in words):
            return False
    if "number" in args and str(issue.get("number", "")).casefold() != args["number"].strip().casefold():
        return False
    if "cover_year" in args and str(issue.get("cover_date", ""))[:4] != args["cover_year"].strip():
        return False
    if "publisher_name" in args and args["publisher_name"].casefold() not in str(
            (issue.get("publisher") or {}).get("name", "")).casefold():
        return False
    return not ("upc" in args and (not issue.get("upc") or issue.get("upc") != args["upc"].strip()))


def _sort_key(issue: dict[str, Any]) -> tuple[str, str, str]:
    series = issue.get("series") or {}
    return str(series.get("sort_name", "")), str(issue.get("cover_date", "")), str(issue.get("number", ""))


def _list_item(issue: dict[str, Any]) -> dict[str, Any]:
    """An /api/issue/ entry: IssueListSerializer's fields, `issue` being the issue's display name."""
    series = issue.get("series") or {}
    item = {key: copy.deepcopy(issue.get(key)) for key in LIST_KEYS if key not in ("series", "issue")}
    item["series"] = {key: series.get(key) for key in ("name", "volume", "year_began")}
    item["issue"] = f"{series.get('name')} ({series.get('year_began')}) #{issue.get('number')}"
    return {key: item[key] for key in LIST_KEYS}


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, content_type="application/json")


def _detail(error: tuple[int, str]) -> Response:
    status, message = error
    return _json({"detail": message}, status)
