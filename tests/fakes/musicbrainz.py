"""A local fake of the MusicBrainz Web Service v2 (JSON), answering like MusicBrainz documents it.

Documented at https://musicbrainz.org/doc/MusicBrainz_API (lookups, `inc=`, `fmt=json`),
https://musicbrainz.org/doc/MusicBrainz_API/Search (release search: Lucene `query`, `limit` 1–100, `offset`; the
`{"created", "count", "offset", "releases": [...]}` envelope with a `score` per release),
https://musicbrainz.org/doc/MusicBrainz_API/Examples (the JSON shapes) and
https://musicbrainz.org/doc/MusicBrainz_API/Rate_Limiting (no or generic User-Agent → 403; over the rate limit →
503 with an `{"error": "Your requests are exceeding the allowable rate limit…"}` body).

Recorded releases live in `tests/fakes/musicbrainz/` as full lookup documents (every `inc` answered); lookups leave
out what was not asked for and search results are derived from them, so every view of a release agrees. Titles,
tracks, barcodes and labels are those of the real releases; ids other than Nirvana's artist id are illustrative.

    fake = FakeMusicBrainz()
    with serve_wsgi(fake) as running:
        provider = build(ProviderConfig("musicbrainz", base_url=running.url, allow_private=True))
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from werkzeug.wrappers import Request, Response

DATA_DIR = Path(__file__).with_name("musicbrainz")
MODES = ("ok", "rate_limited", "error", "slow", "malformed")
RELEASE_INCS = ("artist-credits", "labels", "recordings", "release-groups", "genres", "media", "discids", "isrcs",
                "tags", "ratings", "aliases", "annotation", "url-rels", "artist-rels")
HELP = "For usage, please see: https://musicbrainz.org/development/mmd"
RATE_LIMITED = ("Your requests are exceeding the allowable rate limit. Please see "
                "https://musicbrainz.org/doc/MusicBrainz_API/Rate_Limiting for more information.")
# What MusicBrainz has blocked: no agent at all, and the defaults of generic HTTP libraries.
GENERIC_AGENTS = re.compile(r"^(python-requests|python-urllib|java|curl|wget|go-http-client|okhttp)\b", re.I)
_MBID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CLAUSE = re.compile(r'(?:(\w+):)?("(?:[^"\\]|\\.)*"|[^\s"()]+)')

# Keys of a release in search results, in MusicBrainz's order (the release search example).
SEARCH_KEYS = ("id", "status-id", "title", "status", "packaging", "text-representation", "artist-credit",
               "release-group", "date", "country", "release-events", "barcode", "asin", "label-info", "media")
# Keys a lookup always has; the others come with their `inc`.
LOOKUP_KEYS = ("id", "title", "status", "status-id", "packaging", "packaging-id", "quality", "disambiguation",
               "text-representation", "date", "country", "release-events", "barcode", "asin", "cover-art-archive")
INC_KEYS = {"artist-credits": "artist-credit", "labels": "label-info", "release-groups": "release-group",
            "genres": "genres"}


class FakeMusicBrainz:
    """A WSGI app: `mode` switches failure behaviour, `requests` records (method, path, query, User-Agent)."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.delay = 1.0
        self.retry_after: str | None = "2"
        self.requests: list[tuple[str, str, dict[str, str], str]] = []
        self.releases: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        for path in sorted(DATA_DIR.glob("release_*.json")):
            self.add_release(json.loads(path.read_text(encoding="utf-8")))

    def add_release(self, data: dict[str, Any]) -> None:
        """Add or replace a release: its lookup document with every `inc` answered."""
        with self._lock:
            self.releases[data["id"]] = copy.deepcopy(data)

    # -- WSGI --------------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self._respond(Request(environ))(environ, start_response)

    def _respond(self, request: Request) -> Response:
        agent = request.headers.get("User-Agent", "")
        self.requests.append((request.method, request.path, request.args.to_dict(flat=True), agent))
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")
        if self.mode == "slow":
            time.sleep(self.delay)
        if not agent.strip() or GENERIC_AGENTS.match(agent):
            return Response("Your User-Agent is blocked: please identify your application (see "
                            "https://musicbrainz.org/doc/MusicBrainz_API/Rate_Limiting).", status=403,
                            content_type="text/plain; charset=utf-8")
        if self.mode == "rate_limited":
            response = _error(RATE_LIMITED, 503, with_help=False)
            if self.retry_after is not None:
                response.headers["Retry-After"] = self.retry_after
            return response
        if self.mode == "error":
            return _error("Internal server error", 500, with_help=False)
        if request.method not in ("GET", "HEAD"):
            return _error("Method not allowed", 405)
        response = self._route(request)
        if self.mode == "malformed" and response.status_code == 200:
            body = response.get_data()
            response.set_data(body[: max(1, len(body) // 2)])  # a connection cut mid-body
        return response

    def _route(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        if path == "/ws/2/release":
            return self._search(request)
        match = re.fullmatch(r"/ws/2/release/([^/]+)", path)
        if match:
            return self._lookup(request, match[1])
        return _error("Not Found", 404)

    # -- endpoints ---------------------------------------------------------------------------------------------

    def _lookup(self, request: Request, mbid: str) -> Response:
        if not _MBID.fullmatch(mbid):
            return _error("Invalid mbid.", 400)
        incs = [name for name in re.split(r"[+ ]", request.args.get("inc", "")) if name]
        unknown = [name for name in incs if name not in RELEASE_INCS]
        if unknown:
            return _error(f"{unknown[0]} is not a valid inc parameter for the release resource.", 400)
        release = self.releases.get(mbid)
        if release is None:
            return _error("Not Found", 404)
        body = {key: release.get(key) for key in LOOKUP_KEYS}
        for inc, key in INC_KEYS.items():
            if inc in incs:
                body[key] = copy.deepcopy(release.get(key, []))
        if "release-group" in body and "genres" not in incs:
            body["release-group"].pop("genres", None)
        if "recordings" in incs or "media" in incs:
            body["media"] = [_medium(m, with_tracks="recordings" in incs) for m in release.get("media", [])]
        return _answer(request, body)

    def _search(self, request: Request) -> Response:
        query = request.args.get("query", "").strip()
        if not query:
            return _error("You must specify a query parameter", 400)
        try:
            limit = int(request.args.get("limit", "25"))
            offset = int(request.args.get("offset", "0"))
        except ValueError:
            return _error("limit and offset must be whole numbers", 400)
        if not 1 <= limit <= 100 or offset < 0:
            return _error("limit must be between 1 and 100", 400)
        try:
            found = [r for r in self.releases.values() if _matches(query, r)]
        except ValueError:
            return _error("Failed to parse the search query", 400)
        page = [_search_result(r) for r in found[offset: offset + limit]]
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return _answer(request, {"created": created, "count": len(found), "offset": offset, "releases": page})


# --- helpers ---------------------------------------------------------------------------------------------------


def _answer(request: Request, body: dict[str, Any]) -> Response:
    """JSON when asked for (`fmt=json`, or an Accept header naming it), else the default XML, as MusicBrainz does."""
    wants_json = request.args.get("fmt") == "json" or (
        "fmt" not in request.args and "application/json" in request.headers.get("Accept", ""))
    if not wants_json:
        return Response('<?xml version="1.0" encoding="UTF-8"?><metadata xmlns="http://musicbrainz.org/ns/mmd-2.0#"/>',
                        content_type="application/xml; charset=utf-8")
    return Response(json.dumps(body, ensure_ascii=False), content_type="application/json; charset=utf-8")


def _error(message: str, status: int, *, with_help: bool = True) -> Response:
    body: dict[str, str] = {"error": message}
    if with_help:
        body["help"] = HELP
    return Response(json.dumps(body), status=status, content_type="application/json; charset=utf-8")


def _medium(medium: dict[str, Any], *, with_tracks: bool) -> dict[str, Any]:
    body = copy.deepcopy(medium)
    if not with_tracks:
        body.pop("tracks", None)
    return body


def _search_result(release: dict[str, Any]) -> dict[str, Any]:
    """A release as a search lists it: a score, counts instead of tracks, no genres and no cover-art flag."""
    result: dict[str, Any] = {"score": 100}
    for key in SEARCH_KEYS:
        value = copy.deepcopy(release.get(key))
        if key == "media":
            value = [{"format": m.get("format"), "disc-count": 0, "track-count": m.get("track-count")}
                     for m in value or []]
            result["track-count"] = sum(m["track-count"] or 0 for m in value)
        elif key == "release-group" and isinstance(value, dict):
            value = {k: value.get(k) for k in ("id", "primary-type-id", "title", "primary-type")}
        elif key == "artist-credit":
            value = [{"name": c["name"], "joinphrase": c.get("joinphrase", ""),
                      "artist": {k: c["artist"].get(k) for k in ("id", "name", "sort-name")}} for c in value or []]
        elif key == "label-info":
            value = [{"catalog-number": i.get("catalog-number"),
                      "label": {k: i["label"].get(k) for k in ("id", "name")}} for i in value or []]
        if value is not None:
            result[key] = value
    result["count"] = 1
    return result


def _matches(query: str, release: dict[str, Any]) -> bool:
    """A small Lucene: `field:"phrase"` or `field:term` clauses joined by AND (binding tighter) and OR."""
    alternatives = _split(query, "OR")
    return any(all(_clause(part, release) for part in _split(alt, "AND")) for alt in alternatives)


def _split(text: str, operator: str) -> list[str]:
    """Split on a Lucene operator outside quoted phrases."""
    parts, current, quoted, index = [], [], False, 0
    token = f" {operator} "
    while index < len(text):
        char = text[index]
        if char == "\\" and quoted:
            current.append(text[index: index + 2])
            index += 2
            continue
        if char == '"':
            quoted = not quoted
        if not quoted and text.startswith(token, index):
            parts.append("".join(current))
            current, index = [], index + len(token)
            continue
        current.append(char)
        index += 1
    if quoted:
        raise ValueError("an unterminated phrase")
    return [*parts, "".join(current)]


def _clause(text: str, release: dict[str, Any]) -> bool:
    match = _CLAUSE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"cannot parse {text!r}")
    field, value = match[1] or "release", match[2]
    if value.startswith('"'):
        value = re.sub(r"\\(.)", r"\1", value[1:-1])
    wanted = " ".join(value.split()).casefold()
    if field == "barcode":
        return (release.get("barcode") or "") == value
    if field == "release":
        return wanted in (release.get("title") or "").casefold()
    if field in ("artist", "artistname"):
        credits = release.get("artist-credit") or []
        phrase = "".join(c.get("name", "") + c.get("joinphrase", "") for c in credits).casefold()
        names = [c.get("name", "").casefold() for c in credits] + [
            c.get("artist", {}).get("name", "").casefold() for c in credits]
        return wanted in phrase or any(wanted in name for name in names)
    return False
