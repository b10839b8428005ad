"""TMDB (The Movie Database, API v3): search, details and external-id lookups, answered as our `Candidate`s.

`normalise_movie` and `normalise_tv` are the one place TMDB's JSON becomes a Candidate: search results, details and
/find results all go through them, and so do forms, imports and the Plex matcher. HTTP policy (timeouts, throttle,
outbound-URL rules, status → error) belongs to `providers.http`; this module adds TMDB's auth, paths and wording.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from collectz.providers.base import ClientProvider, SearchQuery
from collectz.providers.config import ProviderConfig
from collectz.providers.http import (
    BadCredentials,
    BadResponse,
    HttpClient,
    NotFoundAt,
    ProviderError,
    RateLimited,
    Unavailable,
)
from collectz.providers.records import (
    Candidate,
    EpisodeInfo,
    SeasonInfo,
    as_dict,
    as_list,
    clean_text,
    name_of,
    parse_date,
    path_id,
    positive_int,
)

if TYPE_CHECKING:
    from collectz.providers.throttle import Throttle

PROVIDER = "tmdb"
DEFAULT_BASE_URL = "https://api.themoviedb.org"
DEFAULT_IMAGE_BASE_URL = "https://image.tmdb.org/t/p"
POSTER_SIZE = "w500"
CAST_LIMIT = 10  # top-billed cast kept on an item; TMDB lists a hundred or more for a feature film
DETAIL_APPEND = "credits,external_ids"
FIND_SOURCES = ("imdb_id", "tvdb_id")
MAX_PAGE = 500  # TMDB answers 400 (status_code 22) beyond it

_V3_KEY = re.compile(r"[0-9a-fA-F]{32}")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_IMAGE_PATH = re.compile(r"/[A-Za-z0-9._-]+")
_EXTERNAL_ID = {"imdb_id": re.compile(r"(tt|nm)\d{5,10}"), "tvdb_id": re.compile(r"\d{1,10}")}

_WRITER_JOBS = frozenset({"Screenplay", "Writer", "Story", "Novel", "Author", "Teleplay", "Original Story", "Book",
                          "Characters"})
_COMPOSER_JOBS = frozenset({"Original Music Composer", "Music", "Composer"})

# TMDB's genre ids (GET /3/genre/movie/list and /3/genre/tv/list, en-US). Search results carry only ids; the ids are
# stable, so a light candidate gets English names without two extra requests. Details carry names in the asked
# language.
MOVIE_GENRES: dict[int, str] = {
    28: "Action", 12: "Adventure", 16: "Animation", 35: "Comedy", 80: "Crime", 99: "Documentary", 18: "Drama",
    10751: "Family", 14: "Fantasy", 36: "History", 27: "Horror", 10402: "Music", 9648: "Mystery", 10749: "Romance",
    878: "Science Fiction", 10770: "TV Movie", 53: "Thriller", 10752: "War", 37: "Western",
}
TV_GENRES: dict[int, str] = {
    10759: "Action & Adventure", 16: "Animation", 35: "Comedy", 80: "Crime", 99: "Documentary", 18: "Drama",
    10751: "Family", 10762: "Kids", 9648: "Mystery", 10763: "News", 10764: "Reality", 10765: "Sci-Fi & Fantasy",
    10766: "Soap", 10767: "Talk", 10768: "War & Politics", 37: "Western",
}

# TMDB's own status codes (developer.themoviedb.org/docs/errors) for a body that says success: false.
_CREDENTIAL_CODES = frozenset({3, 7, 10, 14, 30, 31, 35})
_NOT_FOUND_CODES = frozenset({6, 34, 37})
_RATE_LIMIT_CODE = 25
_UNAVAILABLE_CODES = frozenset({9, 11, 15, 24, 43, 46})


def credentials(secret: str, *, provider: str = PROVIDER) -> tuple[dict[str, str], dict[str, str]]:
    """(headers, query parameters) that authenticate with TMDB.

    A v4 read access token (a JWT) goes in `Authorization: Bearer`; a v3 API key (32 hex characters) as the
    `api_key` parameter. Anything else is refused here, before a request, with a message that says what to paste.
    """
    secret = (secret or "").strip()
    if not secret:
        raise BadCredentials(provider, "no API key is set: paste TMDB's API key or API read access token")
    if _JWT.fullmatch(secret):
        return {"Authorization": f"Bearer {secret}"}, {}
    if _V3_KEY.fullmatch(secret):
        return {}, {"api_key": secret}
    raise BadCredentials(provider, "the API key is neither a v3 API key (32 hexadecimal characters) nor a v4 API "
                                   "read access token: copy one of them from TMDB's API settings page")


def error_from_body(body: Any, where: str, *, provider: str = PROVIDER) -> ProviderError | None:
    """The error a TMDB body describes (`{"success": false, "status_code": 7, …}`), or None for a success."""
    if not isinstance(body, dict) or body.get("success") is not False:
        return None
    code = body.get("status_code")
    said = (clean_text(body.get("status_message")) or "no message")[:200]
    message = f"{where}: TMDB says {said!r} (status_code {code})"
    if code in _CREDENTIAL_CODES:
        return BadCredentials(provider, message)
    if code in _NOT_FOUND_CODES:
        return NotFoundAt(provider, message)
    if code == _RATE_LIMIT_CODE:
        return RateLimited(provider, message)
    if code in _UNAVAILABLE_CODES:
        return Unavailable(provider, message)
    return BadResponse(provider, message)


class TmdbClient:
    """Calls TMDB through one `HttpClient` (which carries the credentials) and returns Candidates."""

    def __init__(self, http: HttpClient, *, image_base_url: str = DEFAULT_IMAGE_BASE_URL,
                 language: str = "en-US") -> None:
        self.http = http
        self.provider = http.provider
        self.image_base_url = image_base_url.rstrip("/")
        self.language = language

    def __repr__(self) -> str:
        return f"<TmdbClient {self.http.base_url} {self.language}>"

    @classmethod
    def from_config(cls, config: ProviderConfig, *, base_url: str = DEFAULT_BASE_URL,
                    image_base_url: str = DEFAULT_IMAGE_BASE_URL, throttle: Throttle | None = None) -> TmdbClient:
        """A client for the saved integration: its `api_key` secret (v3 key or v4 token), its base URL if set."""
        headers, params = credentials(config.secret("api_key"), provider=config.provider)
        http = HttpClient.from_config(config, base_url, headers=headers, params=params, throttle=throttle)
        language = clean_text(config.settings.get("language")) or "en-US"
        return cls(http, image_base_url=image_base_url, language=language)

    # -- calls -----------------------------------------------------------------------------------------------------

    def check(self) -> None:
        """Prove the credentials work (GET /3/authentication); raises a ProviderError saying why not."""
        body = self._get("/3/authentication", what="authentication", localised=False)
        if body.get("success") is not True:
            raise BadCredentials(self.provider, "GET /3/authentication: TMDB did not confirm the API key")

    def search_movies(self, query: str, *, year: int | None = None, page: int = 1) -> list[Candidate]:
        """Movies whose title matches: light candidates (no people, no external ids)."""
        params = {"year": year} if year else {}
        results = self._search("/3/search/movie", query, page, params)
        return [normalise_movie(item, self.image_base_url) for item in results]

    def search_tv(self, query: str, *, year: int | None = None, page: int = 1) -> list[Candidate]:
        """TV series whose name matches (`year` is the first air date's): light candidates."""
        params = {"first_air_date_year": year} if year else {}
        results = self._search("/3/search/tv", query, page, params)
        return [normalise_tv(item, self.image_base_url) for item in results]

    def search(self, query: str, *, year: int | None = None) -> list[Candidate]:
        """Movies and series in one list, TMDB's order (GET /3/search/multi; people are left out).

        /search/multi takes no year, so `year` filters the first page here.
        """
        found = [_normalise_any(item, self.image_base_url) for item in self._search("/3/search/multi", query, 1, {})]
        return [c for c in found if c is not None and (year is None or c.year == year)]

    def movie(self, tmdb_id: int | str) -> Candidate:
        """A movie in full: genres, directors, writers, producers, top cast, composer, external ids, poster."""
        movie_id = _tmdb_id(tmdb_id)
        data = self._get(f"/3/movie/{movie_id}", {"append_to_response": DETAIL_APPEND}, what=f"movie {movie_id}")
        return normalise_movie(data, self.image_base_url)

    def tv(self, tmdb_id: int | str, *, with_episodes: bool = False) -> Candidate:
        """A series in full with its seasons; `with_episodes` adds one request per season for the episode list."""
        series_id = _tmdb_id(tmdb_id)
        data = self._get(f"/3/tv/{series_id}", {"append_to_response": DETAIL_APPEND}, what=f"TV series {series_id}")
        candidate = normalise_tv(data, self.image_base_url)
        if with_episodes:
            candidate.seasons = [self.season(series_id, season.number) for season in candidate.seasons]
        return candidate

    def season(self, tmdb_id: int | str, number: int) -> SeasonInfo:
        """One season of a series with its episodes."""
        series_id = _tmdb_id(tmdb_id)
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise ValueError("a season number is a whole number, 0 (specials) or more")
        data = self._get(f"/3/tv/{series_id}/season/{number}", what=f"season {number} of TV series {series_id}")
        return normalise_season(data)

    def find(self, external_id: str, source: str) -> list[Candidate]:
        """Movies and series TMDB links to an IMDb id (`source="imdb_id"`) or a TheTVDB id (`"tvdb_id"`)."""
        if source not in FIND_SOURCES:
            raise ValueError(f"TMDB can find by {' or '.join(FIND_SOURCES)}, not {source!r}")
        value = str(external_id or "").strip()
        if not _EXTERNAL_ID[source].fullmatch(value):
            raise ValueError(f"{value!r} is not a valid {source}")
        data = self._get(f"/3/find/{quote(value, safe='')}", {"external_source": source}, what=f"{source} {value}")
        movies = [normalise_movie(item, self.image_base_url) for item in _results(data, "movie_results")]
        series = [normalise_tv(item, self.image_base_url) for item in _results(data, "tv_results")]
        return movies + series

    # -- internals ---------------------------------------------------------------------------------------------

    def _search(self, path: str, query: str, page: int, params: dict[str, Any]) -> list[dict[str, Any]]:
        query = " ".join(str(query or "").split())
        if not query:
            return []  # TMDB answers an empty query with no results: save the request
        if isinstance(page, bool) or not isinstance(page, int) or not 1 <= page <= MAX_PAGE:
            raise ValueError(f"a TMDB results page is between 1 and {MAX_PAGE}")
        data = self._get(path, {"query": query, "include_adult": "false", "page": page, **params},
                         what=f"search results for {path.rsplit('/', 1)[-1]}")
        return _results(data, "results")

    def _get(self, path: str, params: dict[str, Any] | None = None, *, what: str,
             localised: bool = True) -> dict[str, Any]:
        """GET a TMDB document; errors say what was asked for and never carry the key (it is never in `path`)."""
        query = {"language": self.language, **(params or {})} if localised else dict(params or {})
        try:
            body = self.http.get_json(path, params=query)
        except NotFoundAt as exc:
            failure: ProviderError = NotFoundAt(self.provider, f"TMDB has no {what} ({exc.message})")
        except BadCredentials as exc:
            failure = BadCredentials(self.provider, "TMDB refused the API key or read access token; check it in "
                                                    f"the TMDB integration's settings ({exc.message})")
        else:
            return _document(body, f"GET {path}", self.provider)
        raise failure


def _document(body: Any, where: str, provider: str) -> dict[str, Any]:
    """A TMDB answer must be a JSON object; one that reports an error becomes that error."""
    failure = error_from_body(body, where, provider=provider)
    if failure is not None:
        raise failure
    if not isinstance(body, dict):
        raise BadResponse(provider, f"{where}: the answer is not a JSON object")
    return body


def _results(data: dict[str, Any], key: str) -> list[dict[str, Any]]:
    results = data.get(key, [])
    if not isinstance(results, list):
        raise BadResponse(PROVIDER, f"the answer's {key} is not a list")
    return [item for item in results if isinstance(item, dict)]


def _tmdb_id(value: int | str) -> int:
    return path_id(value, "a TMDB id")


# --- TMDB JSON → Candidate: the one place ------------------------------------------------------------------------


def normalise_movie(data: dict[str, Any], image_base_url: str) -> Candidate:
    """A movie from /movie/{id} (with credits and external_ids appended), a search result or a /find result."""
    movie_id = _id_of(data, "movie")
    title = clean_text(data.get("title")) or clean_text(data.get("original_title"))
    if title is None:
        raise BadResponse(PROVIDER, f"movie {movie_id} has no title")
    credits = as_dict(data.get("credits"))
    crew = [entry for entry in as_list(credits.get("crew")) if isinstance(entry, dict)]
    people = ([("director", n) for n in _crew_names(crew, lambda c: c.get("job") == "Director")]
              + [("writer", n) for n in _crew_names(crew, lambda c: c.get("department") == "Writing"
                                                    and c.get("job") in _WRITER_JOBS)]
              + [("producer", n) for n in _crew_names(crew, lambda c: c.get("job") == "Producer")]
              + [("cast", n) for n in _cast_names(credits)])
    composers = _crew_names(crew, lambda c: c.get("job") in _COMPOSER_JOBS)
    studio = next((n for n in (name_of(c) for c in as_list(data.get("production_companies"))) if n), None)
    return Candidate(
        provider=PROVIDER, provider_id=str(movie_id), media_type="movie", title=title,
        original_title=_original(data.get("original_title"), title),
        release_date=parse_date(data.get("release_date")), overview=clean_text(data.get("overview")),
        runtime=positive_int(data.get("runtime")), rating=_rating(data),
        genres=_genres(data, MOVIE_GENRES), people=people,
        identifiers=_identifiers(movie_id, data), cover_url=_poster(data, image_base_url),
        details={"studio": studio} if studio else {},
        extra={"composer": ", ".join(composers)} if composers else {},
    )


def normalise_tv(data: dict[str, Any], image_base_url: str) -> Candidate:
    """A series from /tv/{id} (with credits and external_ids appended), a search result or a /find result."""
    series_id = _id_of(data, "TV series")
    title = clean_text(data.get("name")) or clean_text(data.get("original_name"))
    if title is None:
        raise BadResponse(PROVIDER, f"TV series {series_id} has no name")
    creators = [n for n in (name_of(c) for c in as_list(data.get("created_by"))) if n]
    people = [("creator", n) for n in dict.fromkeys(creators)] + [("cast", n) for n in _cast_names(as_dict(
        data.get("credits")))]
    network = next((n for n in (name_of(c) for c in as_list(data.get("networks"))) if n), None)
    details = {"network": network, "status": clean_text(data.get("status"))}
    return Candidate(
        provider=PROVIDER, provider_id=str(series_id), media_type="tv_series", title=title,
        original_title=_original(data.get("original_name"), title),
        release_date=parse_date(data.get("first_air_date")), overview=clean_text(data.get("overview")),
        runtime=_episode_runtime(data), rating=_rating(data), genres=_genres(data, TV_GENRES), people=people,
        identifiers=_identifiers(series_id, data), cover_url=_poster(data, image_base_url),
        seasons=[_season_summary(s) for s in as_list(data.get("seasons")) if isinstance(s, dict)
                 and _season_number(s) is not None],
        details={key: value for key, value in details.items() if value},
    )


def normalise_season(data: dict[str, Any]) -> SeasonInfo:
    """A season from /tv/{id}/season/{n}, with its episodes in order."""
    number = _season_number(data)
    if number is None:
        raise BadResponse(PROVIDER, "a season without a season_number")
    episodes = [EpisodeInfo(number=n, title=clean_text(e.get("name")), air_date=parse_date(e.get("air_date")))
                for e in as_list(data.get("episodes")) if isinstance(e, dict)
                and (n := _whole(e.get("episode_number"))) is not None]
    episodes.sort(key=lambda episode: episode.number)
    return SeasonInfo(number=number, episode_count=len(episodes), name=clean_text(data.get("name")),
                      air_date=parse_date(data.get("air_date")), episodes=episodes)


def _season_summary(data: dict[str, Any]) -> SeasonInfo:
    return SeasonInfo(number=_season_number(data) or 0, episode_count=_whole(data.get("episode_count")),
                      name=clean_text(data.get("name")), air_date=parse_date(data.get("air_date")))


def _normalise_any(item: dict[str, Any], image_base_url: str) -> Candidate | None:
    kind = item.get("media_type")
    if kind == "movie":
        return normalise_movie(item, image_base_url)
    if kind == "tv":
        return normalise_tv(item, image_base_url)
    return None  # people (and anything TMDB adds later)



def _id_of(data: Any, kind: str) -> int:
    if not isinstance(data, dict):
        raise BadResponse(PROVIDER, f"a {kind} is not a JSON object")
    value = _whole(data.get("id"))
    if value is None or value < 1:
        raise BadResponse(PROVIDER, f"a {kind} without a valid id")
    return value


def _whole(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _season_number(data: dict[str, Any]) -> int | None:
    number = _whole(data.get("season_number"))
    return number if number is not None and number >= 0 else None








def _original(value: Any, title: str) -> str | None:
    original = clean_text(value)
    return original if original and original != title else None


def _crew_names(crew: list[dict[str, Any]], wanted: Any) -> list[str]:
    """Names of the crew members `wanted` accepts, in TMDB's order, each once."""
    return list(dict.fromkeys(n for c in crew if wanted(c) and (n := name_of(c))))


def _cast_names(credits: dict[str, Any]) -> list[str]:
    """The top-billed cast (TMDB's `order`), each once."""
    cast = [c for c in as_list(credits.get("cast")) if isinstance(c, dict)]
    cast.sort(key=lambda c: c["order"] if isinstance(c.get("order"), int) else 1_000_000)
    return list(dict.fromkeys(n for c in cast if (n := name_of(c))))[:CAST_LIMIT]


def _rating(data: dict[str, Any]) -> float | None:
    """TMDB's vote average (0–10); None when nobody voted (TMDB then says 0)."""
    average, votes = data.get("vote_average"), data.get("vote_count")
    if isinstance(average, bool) or not isinstance(average, int | float) or not 0 < average <= 10:
        return None
    if isinstance(votes, int) and votes <= 0:
        return None
    return round(float(average), 2)


def _genres(data: dict[str, Any], names: dict[int, str]) -> list[str]:
    """Genre names from details (`genres`), or from a search result's `genre_ids`."""
    if "genres" in data:
        return list(dict.fromkeys(n for n in (name_of(g) for g in as_list(data.get("genres"))) if n))
    return list(dict.fromkeys(names[i] for i in as_list(data.get("genre_ids")) if isinstance(i, int) and i in names))


def _identifiers(tmdb_id: int, data: dict[str, Any]) -> dict[str, str]:
    external = as_dict(data.get("external_ids"))
    ids = {"tmdb_id": str(tmdb_id)}
    for key in ("imdb_id", "tvdb_id", "wikidata_id"):
        value = data.get(key) if data.get(key) not in (None, "") else external.get(key)
        if isinstance(value, str) and value.strip():
            ids[key] = value.strip()
        elif _whole(value):
            ids[key] = str(value)
    return ids


def _poster(data: dict[str, Any], image_base_url: str) -> str | None:
    path = data.get("poster_path")
    if not isinstance(path, str) or not _IMAGE_PATH.fullmatch(path):
        return None
    return f"{image_base_url.rstrip('/')}/{POSTER_SIZE}{path}"


def _episode_runtime(data: dict[str, Any]) -> int | None:
    """A series' runtime is its episodes': TMDB's `episode_run_time` (often empty now), else the latest episode's."""
    for value in as_list(data.get("episode_run_time")):
        if (minutes := positive_int(value)) is not None:
            return minutes
    return positive_int(as_dict(data.get("last_episode_to_air")).get("runtime"))


__all__ = ["DEFAULT_BASE_URL", "DEFAULT_IMAGE_BASE_URL", "PROVIDER", "TmdbClient", "credentials",
           "error_from_body", "normalise_movie", "normalise_season", "normalise_tv"]


# --- as a metadata provider (collectz.providers.base) ----------------------------------------------------------


class TmdbProvider(ClientProvider):
    """TMDB as the enrichment service and the item form use it: movies and TV series."""

    key = "tmdb"
    media_types = ("movie", "tv_series")

    def by_identifier(self, kind: str, value: str) -> list[Candidate]:
        """By TMDB id (a movie first, then a series) or IMDb id; other identifiers: []."""
        if kind == "tmdb_id" and str(value).isdigit():
            for fetch in (self.client.movie, self.client.tv):
                try:
                    return [fetch(value)]
                except NotFoundAt:
                    continue
            return []
        if kind == "imdb_id":
            return [self.details(c) for c in self.client.find(value, "imdb_id")]
        return []

    def search(self, query: SearchQuery, *, limit: int = 10) -> list[Candidate]:
        if query.media_type == "movie":
            found = self.client.search_movies(query.title, year=query.year)
        elif query.media_type == "tv_series":
            found = self.client.search_tv(query.title, year=query.year)
        else:
            found = self.client.search(query.title, year=query.year)
        return found[:limit]

    def details(self, candidate: Candidate) -> Candidate:
        if candidate.provider != self.key:
            return candidate
        if candidate.media_type == "tv_series":
            return self.client.tv(candidate.provider_id)
        return self.client.movie(candidate.provider_id)


def build(config: ProviderConfig, *, throttle: Throttle | None = None,
          image_base_url: str = DEFAULT_IMAGE_BASE_URL) -> TmdbProvider:
    """The provider for the saved TMDB card (its base URL, when set, is the address: e.g. a local fake in tests)."""
    return TmdbProvider(TmdbClient.from_config(config, image_base_url=image_base_url, throttle=throttle))
