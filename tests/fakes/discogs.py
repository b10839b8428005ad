"""A local fake of the Discogs API v2.0, answering like Discogs documents it (https://www.discogs.com/developers).

Endpoints, as documented there: Database → Release (`GET /releases/{release_id}`), Database → Search
(`GET /database/search` with `q`, `type`, `release_title`, `artist`, `year`, `barcode`, `per_page` (≤ 100) and `page`,
answered as `{"pagination": {...}, "results": [...]}`; authentication required), and User Identity
(`GET /oauth/identity`). Authentication ("Discogs Auth Flow"): `Authorization: Discogs token=…` or a `token` query
parameter; none on an endpoint that needs it → 401 `{"message": "You must authenticate to access this resource."}`,
a wrong token → 401 `{"message": "Invalid consumer token. Please register an app before making requests."}`.
Errors are `{"message": "…"}` (404 "Release not found.", 429 "You are making requests too quickly."); every answer
carries the `X-Discogs-Ratelimit*` headers ("Rate Limiting").

Releases are recorded in `tests/fakes/discogs/release_{id}.json`; release 249504 is the documentation's own
example. Search results are derived from the release documents, so every view of a release agrees.

    fake = FakeDiscogs()
    with serve_wsgi(fake) as running:
        provider = build(ProviderConfig("discogs", secrets={"discogs_token": fake.token},
                                        base_url=running.url, allow_private=True))
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

DATA_DIR = Path(__file__).with_name("discogs")
DEFAULT_TOKEN = "fakeDiscogsPersonalTokenAbCdEf0123456789"
REDACTED = "[redacted]"
MODES = ("ok", "rate_limited", "error", "slow", "malformed")
PUBLIC_BASE = "https://api.discogs.com"
RATE_LIMIT = 60

MUST_AUTHENTICATE = (401, "You must authenticate to access this resource.")
INVALID_TOKEN = (401, "Invalid consumer token. Please register an app before making requests.")
RELEASE_NOT_FOUND = (404, "Release not found.")
NOT_FOUND = (404, "The requested resource was not found.")
TOO_QUICKLY = (429, "You are making requests too quickly.")
INTERNAL_ERROR = (500, "An internal server error occurred.")
METHOD_NOT_ALLOWED = (405, "Method not allowed.")
INVALID_PAGE = (422, "Invalid page or per_page: they must be positive whole numbers.")


class FakeDiscogs:
    """A WSGI app: `mode` switches failure behaviour, `requests` records (method, path, query, User-Agent, auth)
    with the token never kept (auth is "header", "query", "none" or "wrong")."""

    def __init__(self, *, token: str = DEFAULT_TOKEN) -> None:
        self.token = token
        self.mode = "ok"
        self.delay = 1.0
        self.retry_after: str | None = "60"
        self.requests: list[tuple[str, str, dict[str, str], str, str]] = []
        self.releases: dict[int, dict[str, Any]] = {}
        self.identity: dict[str, Any] = json.loads((DATA_DIR / "identity.json").read_text(encoding="utf-8"))
        self._lock = threading.Lock()
        for path in sorted(DATA_DIR.glob("release_*.json")):
            self.add_release(json.loads(path.read_text(encoding="utf-8")))

    def add_release(self, data: dict[str, Any]) -> None:
        """Add or replace a release (its /releases/{id} document)."""
        with self._lock:
            self.releases[int(data["id"])] = copy.deepcopy(data)

    # -- WSGI --------------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self._respond(Request(environ))(environ, start_response)

    def _respond(self, request: Request) -> Response:
        auth = self._auth(request)
        query = request.args.to_dict(flat=True)
        if "token" in query:
            query["token"] = REDACTED
        self.requests.append((request.method, request.path, query, request.headers.get("User-Agent", ""), auth))
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")
        if self.mode == "slow":
            time.sleep(self.delay)
        response = self._answer(request, auth)
        used = min(len(self.requests), RATE_LIMIT)  # a fake's moving window: every request so far
        response.headers["X-Discogs-Ratelimit"] = str(RATE_LIMIT)
        response.headers["X-Discogs-Ratelimit-Used"] = str(used)
        response.headers["X-Discogs-Ratelimit-Remaining"] = str(max(0, RATE_LIMIT - used))
        return response

    def _answer(self, request: Request, auth: str) -> Response:
        if self.mode == "rate_limited":
            response = _error(TOO_QUICKLY)
            if self.retry_after is not None:
                response.headers["Retry-After"] = self.retry_after
            return response
        if self.mode == "error":
            return _error(INTERNAL_ERROR)
        if request.method not in ("GET", "HEAD"):
            return _error(METHOD_NOT_ALLOWED)
        if auth == "wrong":
            return _error(INVALID_TOKEN)
        response = self._route(request, authenticated=auth != "none")
        if self.mode == "malformed" and response.status_code == 200:
            body = response.get_data()
            response.set_data(body[: max(1, len(body) // 2)])  # a connection cut mid-body
        return response

    def _auth(self, request: Request) -> str:
        header = request.headers.get("Authorization", "")
        if header:
            return "header" if header == f"Discogs token={self.token}" else "wrong"
        if "token" in request.args:
            return "query" if request.args["token"] == self.token else "wrong"
        return "none"

    def _route(self, request: Request, *, authenticated: bool) -> Response:
        path = request.path.rstrip("/")
        if path == "/oauth/identity":
            return _json(self.identity) if authenticated else _error(MUST_AUTHENTICATE)
        if path == "/database/search":
            return self._search(request) if authenticated else _error(MUST_AUTHENTICATE)
        match = re.fullmatch(r"/releases/([^/]+)", path)
        if match:
            return self._release(match[1], authenticated=authenticated)
        return _error(NOT_FOUND)

    # -- endpoints ---------------------------------------------------------------------------------------------

    def _release(self, release_id: str, *, authenticated: bool) -> Response:
        release = self.releases.get(int(release_id)) if release_id.isdigit() else None
        if release is None:
            return _error(RELEASE_NOT_FOUND if release_id.isdigit() else NOT_FOUND)
        body = copy.deepcopy(release)
        if not authenticated:  # image URLs are for authenticated requests only
            body["images"] = [{**image, "uri": "", "resource_url": "", "uri150": ""} for image in body["images"]]
            body["thumb"] = ""
        return _json(body)

    def _search(self, request: Request) -> Response:
        args = request.args
        try:
            page, per_page = int(args.get("page", "1")), int(args.get("per_page", "50"))
        except ValueError:
            return _error(INVALID_PAGE)
        if page < 1 or per_page < 1:
            return _error(INVALID_PAGE)
        per_page = min(per_page, 100)
        kind = args.get("type", "")
        found = [r for r in self.releases.values() if kind in ("", "release") and _matches(r, args)]
        pages = max(1, -(-len(found) // per_page))
        results = [_search_result(r) for r in found[(page - 1) * per_page: page * per_page]]
        urls = {}
        if page < pages:
            base = f"{PUBLIC_BASE}/database/search?"
            others = {k: v for k, v in args.items() if k not in ("page", "token")}
            urls = {"last": base + urlencode({**others, "page": pages}),
                    "next": base + urlencode({**others, "page": page + 1})}
        return _json({"pagination": {"page": page, "pages": pages, "per_page": per_page, "items": len(found),
                                     "urls": urls}, "results": results})


# --- helpers ---------------------------------------------------------------------------------------------------


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, content_type="application/json")


def _error(error: tuple[int, str]) -> Response:
    status, message = error
    return _json({"message": message}, status)


def _display_artists(release: dict[str, Any]) -> str:
    """Artists as Discogs titles a search result: names (with their "(2)") joined by their join words."""
    parts = []
    for artist in release.get("artists", []):
        parts.append(artist.get("anv") or artist["name"])
        join = (artist.get("join") or "").strip()
        if join:
            parts.append("," if join == "," else f" {join}")
    return " ".join(p for p in parts).replace(" ,", ",")


def _search_result(release: dict[str, Any]) -> dict[str, Any]:
    """A release as /database/search lists it: flat lists of strings, "Artist - Title", the year as text."""
    formats = release.get("formats", [])
    images = release.get("images", [])
    primary = next((i for i in images if i.get("type") == "primary"), images[0] if images else None)
    spacer = "https://st.discogs.com/images/spacer.gif"
    master_id = release.get("master_id") or None
    return {
        "country": release.get("country"),
        "year": str(release["year"]) if release.get("year") else None,
        "format": [f["name"] for f in formats] + [d for f in formats for d in f.get("descriptions", [])],
        "label": [label["name"] for label in release.get("labels", [])],
        "type": "release",
        "genre": list(release.get("genres", [])),
        "style": list(release.get("styles", [])),
        "id": release["id"],
        "barcode": [i["value"] for i in release.get("identifiers", [])],
        "master_id": master_id,
        "master_url": f"{PUBLIC_BASE}/masters/{master_id}" if master_id else None,
        "uri": release["uri"].replace("https://www.discogs.com", ""),
        "catno": (release.get("labels") or [{}])[0].get("catno", ""),
        "title": f"{_display_artists(release)} - {release['title']}",
        "thumb": primary["uri150"] if primary else "",
        "cover_image": primary["uri"] if primary else spacer,
        "resource_url": release["resource_url"],
        "community": {"want": release["community"]["want"], "have": release["community"]["have"]},
        "format_quantity": release.get("format_quantity", 1),
        "formats": copy.deepcopy(formats),
    }


def _matches(release: dict[str, Any], args: Any) -> bool:
    def contains(wanted: str | None, *texts: str) -> bool:
        wanted = " ".join((wanted or "").split()).casefold()
        return not wanted or any(wanted in " ".join(t.split()).casefold() for t in texts)

    names = [a["name"] for a in release.get("artists", [])] + [a.get("anv") or "" for a in release.get("artists", [])]
    whole = f"{_display_artists(release)} - {release['title']}"
    barcode = re.sub(r"\D", "", args.get("barcode", ""))
    printed = [re.sub(r"\D", "", i["value"]) for i in release.get("identifiers", [])]
    return (contains(args.get("q"), whole) and contains(args.get("release_title"), release["title"])
            and contains(args.get("artist"), *names)
            and (not args.get("year") or str(release.get("year")) == args["year"].strip())
            and (not barcode or any(barcode in number for number in printed)))
