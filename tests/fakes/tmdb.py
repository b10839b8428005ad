"""A local fake of TMDB's v3 API, answering like TMDB documents it (tests never reach the internet).

Documents are recorded in `tests/fakes/tmdb/`, trimmed from the shapes of the examples in TMDB's OpenAPI reference:
movies 550 (Fight Club), 78 (Blade Runner), 335984 (Blade Runner 2049), 289732 (Zombie Fight Club, a non-English
original title) and the series 1396 (Breaking Bad, seasons 1–3 with their episodes). Search results, /find results
and appended responses are derived from those documents, so every view of an item agrees.

    fake = FakeTmdb()
    with serve_wsgi(fake) as running:
        client = TmdbClient(HttpClient("tmdb", running.url, allow_private=True,
                                       params={"api_key": fake.api_key}))
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

DATA_DIR = Path(__file__).with_name("tmdb")
DEFAULT_API_KEY = "0123456789abcdef0123456789abcdef"
PAGE_SIZE = 20
MAX_PAGE = 500
REDACTED = "[redacted]"
MODES = ("ok", "rate_limited", "error", "slow", "malformed")

# TMDB's error bodies (developer.themoviedb.org/docs/errors): (HTTP status, status_code, status_message).
INVALID_KEY = (401, 7, "Invalid API key: You must be granted a valid key.")
NOT_FOUND = (404, 34, "The resource you requested could not be found.")
RATE_LIMITED = (429, 25, "Your request count (#) is over the allowed limit of (40).")
INTERNAL_ERROR = (500, 11, "Internal error: Something went wrong, contact TMDB.")
INVALID_PAGE = (400, 22, "Invalid page: Pages start at 1 and max at 500. They are expected to be an integer.")
INVALID_PARAMETERS = (422, 5, "Invalid parameters: Your request parameters are incorrect.")
METHOD_NOT_ALLOWED = (405, 42, "The request method is not supported for this resource.")

# Keys of a search result, in TMDB's order (the examples of /3/search/movie and /3/search/tv).
MOVIE_RESULT_KEYS = ("adult", "backdrop_path", "genre_ids", "id", "original_language", "original_title", "overview",
                     "popularity", "poster_path", "release_date", "title", "video", "vote_average", "vote_count")
TV_RESULT_KEYS = ("adult", "backdrop_path", "genre_ids", "id", "origin_country", "original_language",
                  "original_name", "overview", "popularity", "poster_path", "first_air_date", "name",
                  "vote_average", "vote_count")
APPENDABLE = ("credits", "external_ids", "release_dates")


class FakeTmdb:
    """A WSGI app: `mode` switches failure behaviour, `requests` records what was asked (keys redacted)."""

    def __init__(self, *, api_key: str = DEFAULT_API_KEY, read_token: str | None = None) -> None:
        self.api_key = api_key
        self.read_token = read_token
        self.mode = "ok"
        self.delay = 1.0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.movies: dict[int, dict[str, Any]] = {}
        self.series: dict[int, dict[str, Any]] = {}
        self.seasons: dict[tuple[int, int], dict[str, Any]] = {}
        self.people: list[dict[str, Any]] = _load("people.json")
        self.configuration: dict[str, Any] = _load("configuration.json")
        self._lock = threading.Lock()
        for path in sorted(DATA_DIR.glob("movie_*.json")):
            self.add_movie(_load(path.name))
        for path in sorted(DATA_DIR.glob("tv_*.json")):
            match = re.fullmatch(r"tv_(\d+)_season_(\d+)\.json", path.name)
            if match:
                self.add_season(int(match[1]), _load(path.name))
            else:
                self.add_tv(_load(path.name))
        self._routes: list[tuple[re.Pattern[str], Callable[..., Response]]] = [
            (re.compile(r"/3/authentication"), self._authentication),
            (re.compile(r"/3/configuration"), lambda request: _json(self.configuration)),
            (re.compile(r"/3/search/(movie|tv|multi)"), self._search),
            (re.compile(r"/3/movie/(\d+)"), lambda request, i: self._details(request, self.movies, i)),
            (re.compile(r"/3/movie/(\d+)/(credits|external_ids|release_dates)"),
             lambda request, i, part: self._part(self.movies, i, part)),
            (re.compile(r"/3/tv/(\d+)"), lambda request, i: self._details(request, self.series, i)),
            (re.compile(r"/3/tv/(\d+)/(credits|external_ids)"),
             lambda request, i, part: self._part(self.series, i, part)),
            (re.compile(r"/3/tv/(\d+)/season/(\d+)"), self._season),
            (re.compile(r"/3/find/([^/]+)"), self._find),
        ]

    # -- set-up ------------------------------------------------------------------------------------------------

    def add_movie(self, data: dict[str, Any]) -> None:
        """Add or replace a movie: the /3/movie/{id} document with `credits` and `external_ids` appended."""
        with self._lock:
            self.movies[int(data["id"])] = copy.deepcopy(data)

    def add_tv(self, data: dict[str, Any]) -> None:
        """Add or replace a series: the /3/tv/{id} document with `credits` and `external_ids` appended."""
        with self._lock:
            self.series[int(data["id"])] = copy.deepcopy(data)

    def add_season(self, tv_id: int, data: dict[str, Any]) -> None:
        """Add or replace a season document (/3/tv/{tv_id}/season/{n})."""
        with self._lock:
            self.seasons[(int(tv_id), int(data["season_number"]))] = copy.deepcopy(data)

    # -- WSGI --------------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        return self._respond(request)(environ, start_response)

    def _respond(self, request: Request) -> Response:
        query = request.args.to_dict(flat=True)
        if "api_key" in query:
            query["api_key"] = REDACTED
        self.requests.append((request.method, request.path, query))
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")
        if self.mode == "slow":
            time.sleep(self.delay)
        if self.mode == "rate_limited":
            response = _error(RATE_LIMITED)
            response.headers["Retry-After"] = "2"
            return response
        if self.mode == "error":
            return _error(INTERNAL_ERROR)
        if request.method not in ("GET", "HEAD"):
            return _error(METHOD_NOT_ALLOWED)
        if not self._authorised(request):
            return _error(INVALID_KEY)
        response = self._route(request)
        if self.mode == "malformed" and response.status_code == 200:
            body = response.get_data()
            response.set_data(body[: max(1, len(body) // 2)])  # a connection cut mid-body
        return response

    def _authorised(self, request: Request) -> bool:
        """TMDB takes a v3 key as `api_key` or a v4 read access token as `Authorization: Bearer`."""
        if request.args.get("api_key") == self.api_key:
            return True
        header = request.headers.get("Authorization", "")
        return bool(self.read_token) and header == f"Bearer {self.read_token}"

    def _route(self, request: Request) -> Response:
        path = request.path.rstrip("/")
        for pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match:
                return handler(request, *match.groups())
        return _error(NOT_FOUND)

    # -- endpoints ---------------------------------------------------------------------------------------------

    def _authentication(self, request: Request) -> Response:
        return _json({"success": True, "status_code": 1, "status_message": "Success."})

    def _search(self, request: Request, kind: str) -> Response:
        try:
            page = int(request.args.get("page", "1"))
        except ValueError:
            return _error(INVALID_PAGE)
        if not 1 <= page <= MAX_PAGE:
            return _error(INVALID_PAGE)
        query = " ".join(request.args.get("query", "").split()).casefold()
        adult = request.args.get("include_adult", "false") == "true"
        found = self._matches(kind, query, request.args) if query else []
        found = [item for item in found if adult or not item.get("adult")]
        found.sort(key=lambda item: -float(item.get("popularity") or 0))
        total_pages = max(1, -(-len(found) // PAGE_SIZE))
        results = found[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
        return _json({"page": page, "results": results, "total_pages": total_pages, "total_results": len(found)})

    def _matches(self, kind: str, query: str, args: Any) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        if kind in ("movie", "multi"):
            year = args.get("primary_release_year") or args.get("year") if kind == "movie" else None
            for movie in self.movies.values():
                if _title_matches(query, movie.get("title"), movie.get("original_title")) and _in_year(
                        movie.get("release_date"), year):
                    results.append(_movie_result(movie, multi=kind == "multi"))
        if kind in ("tv", "multi"):
            year = args.get("first_air_date_year") or args.get("year") if kind == "tv" else None
            for series in self.series.values():
                if _title_matches(query, series.get("name"), series.get("original_name")) and _in_year(
                        series.get("first_air_date"), year):
                    results.append(_tv_result(series, multi=kind == "multi"))
        if kind == "multi":
            results += [copy.deepcopy(p) for p in self.people if _title_matches(query, p.get("name"))]
        return results

    def _details(self, request: Request, documents: dict[int, dict[str, Any]], item_id: str) -> Response:
        document = documents.get(int(item_id))
        if document is None:
            return _error(NOT_FOUND)
        wanted = [name.strip() for name in request.args.get("append_to_response", "").split(",") if name.strip()]
        body = {key: value for key, value in document.items() if key not in APPENDABLE}
        for name in wanted:  # TMDB ignores names it does not know
            if name in APPENDABLE and name in document:
                body[name] = {k: v for k, v in document[name].items() if k != "id"}
        return _json(body)

    def _part(self, documents: dict[int, dict[str, Any]], item_id: str, part: str) -> Response:
        document = documents.get(int(item_id))
        if document is None or part not in document:
            return _error(NOT_FOUND)
        return _json({**document[part], "id": int(item_id)})

    def _season(self, request: Request, tv_id: str, number: str) -> Response:
        season = self.seasons.get((int(tv_id), int(number)))
        if season is None or int(tv_id) not in self.series:
            return _error(NOT_FOUND)
        return _json(season)

    def _find(self, request: Request, external_id: str) -> Response:
        source = request.args.get("external_source", "")
        if source not in ("imdb_id", "facebook_id", "instagram_id", "tvdb_id", "tiktok_id", "twitter_id",
                          "wikidata_id", "youtube_id"):
            return _error(INVALID_PARAMETERS)
        movies = [_movie_result(m, multi=True) for m in self.movies.values() if _external(m, source) == external_id]
        series = [_tv_result(s, multi=True) for s in self.series.values() if _external(s, source) == external_id]
        return _json({"movie_results": movies, "person_results": [], "tv_results": series,
                      "tv_episode_results": [], "tv_season_results": []})


# --- helpers ---------------------------------------------------------------------------------------------------


def _load(name: str) -> Any:
    return json.loads((DATA_DIR / name).read_text(encoding="utf-8"))


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status,
                    content_type="application/json;charset=utf-8")


def _error(error: tuple[int, int, str]) -> Response:
    status, code, message = error
    return _json({"success": False, "status_code": code, "status_message": message}, status)


def _title_matches(query: str, *titles: Any) -> bool:
    return any(isinstance(title, str) and query in title.casefold() for title in titles)


def _in_year(when: Any, year: str | None) -> bool:
    return not year or (isinstance(when, str) and when[:4] == year.strip())


def _movie_result(movie: dict[str, Any], *, multi: bool) -> dict[str, Any]:
    result = {key: movie.get(key) for key in MOVIE_RESULT_KEYS if key != "genre_ids"}
    result["genre_ids"] = [genre["id"] for genre in movie.get("genres", [])]
    return {**result, "media_type": "movie"} if multi else result


def _tv_result(series: dict[str, Any], *, multi: bool) -> dict[str, Any]:
    result = {key: series.get(key) for key in TV_RESULT_KEYS if key != "genre_ids"}
    result["genre_ids"] = [genre["id"] for genre in series.get("genres", [])]
    return {**result, "media_type": "tv"} if multi else result


def _external(document: dict[str, Any], source: str) -> str | None:
    value = (document.get("external_ids") or {}).get(source) or document.get(source)
    return None if value in (None, "") else str(value)
