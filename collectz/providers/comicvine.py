"""ComicVine (comicvine.gamespot.com/api): issue search and details, answered as our `Candidate`s.

ComicVine's API (documented at https://comicvine.gamespot.com/api/documentation) takes the key as the `api_key`
parameter, wants `format=json` and refuses clients without a User-Agent. Every answer is one envelope:
`{"error", "limit", "offset", "number_of_page_results", "number_of_total_results", "status_code", "results",
"version"}`; `status_code` 1 is OK, 100 a bad key (HTTP 401), 101 an unknown object, 102 a malformed URL,
104 a bad filter, 107 a rate limit (HTTP 420, "Slow down cowboy"). ids in paths carry the resource's prefix:
issue `4000-{id}`, volume (a series) `4050-{id}`. Issues carry no barcode or ISBN, so `by_identifier` answers
only ComicVine ids.

`normalise_issue` (an issue document: /issue/, /issues/ or /search/) is the one place ComicVine's JSON becomes a
Candidate; `publisher_of` reads a volume document.
"""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING, Any

import requests

from collectz.providers.base import ClientProvider, SearchQuery
from collectz.providers.config import ProviderConfig
from collectz.providers.http import (
    BadCredentials,
    BadResponse,
    HttpClient,
    NotFoundAt,
    ProviderError,
    RateLimited,
    parse_retry_after,
)
from collectz.providers.metron import split_issue_title
from collectz.providers.records import Candidate, clean_text, parse_date, path_id

if TYPE_CHECKING:
    from collectz.providers.throttle import Throttle

PROVIDER = "comicvine"
DEFAULT_BASE_URL = "https://comicvine.gamespot.com"
USER_AGENT = "collectZ/0.1 (+https://github.com/collectz)"
ISSUE_PREFIX = 4000
VOLUME_PREFIX = 4050
SEARCH_LIMIT = 10  # /search/ answers at most 10 a page
VOLUMES_PER_SEARCH = 5  # series asked for an issue number: the best-ranked few
VOLUME_FIELDS = "id,name,publisher,start_year"
_KEY = re.compile(r"[0-9a-fA-F]{40}")
_TAG = re.compile(r"<[^>]+>")
_ROLE_MAP = {"writer": "writer", "plotter": "writer", "scripter": "writer", "penciler": "artist",
             "penciller": "artist", "artist": "artist", "breakdowns": "artist", "inker": "inker",
             "colorist": "colorist"}
_EXTRA_ROLES = {"cover": "cover_artist", "letterer": "letterer"}

# ComicVine's status codes (API documentation, "Status Codes").
_ERRORS: dict[int, type[ProviderError]] = {100: BadCredentials, 101: NotFoundAt, 102: BadResponse,
                                           103: BadResponse, 104: BadResponse, 105: BadResponse,
                                           107: RateLimited}


def error_from_body(body: Any, where: str, *, provider: str = PROVIDER) -> ProviderError | None:
    """The error a ComicVine envelope reports (`status_code` other than 1), or None for a success."""
    if not isinstance(body, dict) or body.get("status_code") == 1:
        return None
    code = body.get("status_code")
    said = (clean_text(body.get("error")) or "no message")[:200]
    kind = _ERRORS.get(code, BadResponse) if isinstance(code, int) else BadResponse
    return kind(provider, f"{where}: ComicVine says {said!r} (status_code {code})")


class ComicVineHttp(HttpClient):
    """`HttpClient` that knows ComicVine's rate-limit answer: HTTP 420 with status_code 107."""

    def error_for(self, response: requests.Response, where: str) -> ProviderError | None:
        if response.status_code == 420:
            return RateLimited(self.provider, f"{where}: too many requests (ComicVine asks to slow down)",
                               retry_after=parse_retry_after(response.headers.get("Retry-After")))
        return None


def credentials(api_key: str, *, provider: str = PROVIDER) -> dict[str, str]:
    """The query parameters that authenticate (and ask for JSON); a key of the wrong shape is refused here."""
    key = (api_key or "").strip()
    if not key:
        raise BadCredentials(provider, "no API key is set: paste your ComicVine API key on the ComicVine card")
    if not _KEY.fullmatch(key):
        raise BadCredentials(provider, "the API key is not a ComicVine API key (40 hexadecimal characters): copy "
                                       "it from comicvine.gamespot.com/api")
    return {"api_key": key, "format": "json"}


class ComicVineClient:
    """Calls ComicVine through one `ComicVineHttp` (which carries the key) and returns Candidates."""

    def __init__(self, http: HttpClient) -> None:
        self.http = http
        self.provider = http.provider

    def __repr__(self) -> str:
        return f"<ComicVineClient {self.http.base_url}>"

    @classmethod
    def from_config(cls, config: ProviderConfig, *, throttle: Throttle | None = None) -> ComicVineClient:
        """A client for the saved ComicVine card (`api_key` secret)."""
        params = credentials(config.secret("api_key"), provider=config.provider)
        return cls(ComicVineHttp.from_config(config, DEFAULT_BASE_URL, headers={"User-Agent": USER_AGENT},
                                             params=params, throttle=throttle))

    def check(self) -> None:
        """One cheap authenticated call: one issue id."""
        self._get("/api/issues/", {"limit": 1, "field_list": "id"}, what="the issue list")

    def search_issues(self, query: str, *, limit: int = SEARCH_LIMIT) -> list[Candidate]:
        """Issues ComicVine's search ranks for `query` (GET /api/search/?resources=issue): light candidates."""
        return [normalise_issue(item) for item in self._search(query, "issue", limit)]

    def search_volumes(self, name: str, *, limit: int = VOLUMES_PER_SEARCH) -> list[dict[str, Any]]:
        """Volumes (series) ComicVine's search ranks for `name`: their documents (id, name, start_year…)."""
        return self._search(name, "volume", limit)

    def issues(self, volume_ids: list[int], number: str, *, limit: int = 100) -> list[Candidate]:
        """Issues numbered `number` in these volumes (GET /api/issues/?filter=volume:a|b,issue_number:n)."""
        ids = "|".join(str(_cv_id(i)) for i in volume_ids)
        number = number.strip()
        if not ids or not number or re.search(r"[,:|]", number):
            return []  # ',' ':' '|' are the filter's own syntax
        body = self._get("/api/issues/", {"filter": f"volume:{ids},issue_number:{number}", "limit": limit,
                                          "sort": "cover_date:asc"}, what="issues")
        return [normalise_issue(item) for item in _results(body)]

    def issue(self, issue_id: int | str) -> Candidate:
        """An issue in full: credits, cover; the publisher and series year from its volume."""
        number = _cv_id(issue_id)
        body = self._get(f"/api/issue/{ISSUE_PREFIX}-{number}/", None, what=f"issue {number}")
        candidate = normalise_issue(_result(body))
        volume_id = candidate.extra.get("comicvine_volume_id")
        if volume_id:
            volume = self._get(f"/api/volume/{VOLUME_PREFIX}-{_cv_id(volume_id)}/", {"field_list": VOLUME_FIELDS},
                               what=f"volume {volume_id}")
            publisher, start_year = publisher_of(_result(volume))
            if publisher:
                candidate.details["publisher"] = publisher
            if start_year:
                candidate.extra["series_year_began"] = start_year
        return candidate

    # -- internals ---------------------------------------------------------------------------------------------

    def _search(self, query: str, resource: str, limit: int) -> list[dict[str, Any]]:
        query = " ".join(str(query or "").split())
        if not query:
            return []
        body = self._get("/api/search/", {"resources": resource, "query": query,
                                          "limit": max(1, min(limit, SEARCH_LIMIT)), "page": 1},
                         what=f"{resource} search results")
        return [item for item in _results(body) if item.get("resource_type", resource) == resource]

    def _get(self, path: str, params: dict[str, Any] | None, *, what: str) -> dict[str, Any]:
        where = f"GET {path}"
        try:
            body = self.http.get_json(path, params=params)
        except NotFoundAt as exc:
            failure: ProviderError = NotFoundAt(self.provider, f"ComicVine has no {what} ({exc.message})")
        except BadCredentials as exc:
            failure = BadCredentials(self.provider, "ComicVine refused the API key; check it on the ComicVine "
                                                    f"card ({exc.message})")
        else:
            error = error_from_body(body, where, provider=self.provider)
            if isinstance(error, NotFoundAt):
                raise NotFoundAt(self.provider, f"ComicVine has no {what} ({error.message})")
            if error is not None:
                raise error
            if not isinstance(body, dict) or "results" not in body:
                raise BadResponse(self.provider, f"{where}: the answer is not a ComicVine envelope")
            return body
        raise failure


def _results(body: dict[str, Any]) -> list[dict[str, Any]]:
    results = body.get("results")
    if not isinstance(results, list):
        raise BadResponse(PROVIDER, "the answer's results is not a list")
    return [item for item in results if isinstance(item, dict)]


def _result(body: dict[str, Any]) -> dict[str, Any]:
    result = body.get("results")
    if not isinstance(result, dict):
        raise BadResponse(PROVIDER, "the answer's results is not a document")
    return result


def _cv_id(value: int | str) -> int:
    return path_id(value, "a ComicVine id")


# --- ComicVine JSON → Candidate: the one place -------------------------------------------------------------------


def normalise_issue(data: dict[str, Any]) -> Candidate:
    """An issue from /issue/4000-{id}/ (with person_credits) or a /issues/ or /search/ result (without)."""
    issue_id = data.get("id") if isinstance(data, dict) else None
    if isinstance(issue_id, bool) or not isinstance(issue_id, int) or issue_id < 1:
        raise BadResponse(PROVIDER, "an issue without a valid id")
    volume = data.get("volume") if isinstance(data.get("volume"), dict) else {}
    series = clean_text(volume.get("name"))
    number = clean_text(data.get("issue_number"))
    name = clean_text(data.get("name"))
    title = f"{series} #{number}" if series and number else series or name
    if title is None:
        raise BadResponse(PROVIDER, f"issue {issue_id} has no volume and no name")
    cover_date = parse_date(data.get("cover_date"))
    people, extra = _credits(data.get("person_credits"))
    if name and title != name:
        extra["story_title"] = name
    if isinstance(volume.get("id"), int) and not isinstance(volume.get("id"), bool):
        extra["comicvine_volume_id"] = str(volume["id"])
    details = {"series": series, "issue": number, "cover_date": cover_date.isoformat() if cover_date else None}
    return Candidate(
        provider=PROVIDER, provider_id=str(issue_id), media_type="comic_book", title=title,
        year=cover_date.year if cover_date else None,
        release_date=parse_date(data.get("store_date")) or cover_date,
        overview=clean_text(data.get("deck")) or html_text(data.get("description")),
        people=people, identifiers={"comicvine_id": str(issue_id)}, cover_url=_cover(data.get("image")),
        details={key: value for key, value in details.items() if value}, extra=extra,
    )


def publisher_of(volume: dict[str, Any]) -> tuple[str | None, str | None]:
    """(publisher name, start year) from a volume document."""
    publisher = volume.get("publisher") if isinstance(volume.get("publisher"), dict) else {}
    start = clean_text(str(volume.get("start_year"))) if volume.get("start_year") is not None else None
    return clean_text(publisher.get("name")), start if start and start.isdigit() else None


def _credits(value: Any) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """person_credits (`role` is a comma-separated list, "penciler, cover") → our roles, in order, each once."""
    people: list[tuple[str, str]] = []
    extra: dict[str, list[str]] = {}
    for credit in value if isinstance(value, list) else []:
        if not isinstance(credit, dict) or (name := clean_text(credit.get("name"))) is None:
            continue
        for role in str(credit.get("role") or "").split(","):
            role = role.strip().lower()
            if role in _ROLE_MAP:
                people.append((_ROLE_MAP[role], name))
            elif role in _EXTRA_ROLES:
                extra.setdefault(_EXTRA_ROLES[role], []).append(name)
    return list(dict.fromkeys(people)), {key: ", ".join(dict.fromkeys(v)) for key, v in extra.items()}


def html_text(value: Any) -> str | None:
    """ComicVine's HTML description as plain text (tags dropped, entities decoded, blocks on their own lines)."""
    if not isinstance(value, str):
        return None
    text = re.sub(r"</(p|h\d|li|div)>|<br\s*/?>", "\n", value, flags=re.IGNORECASE)
    text = html.unescape(_TAG.sub("", text))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return clean_text("\n".join(line for line in lines if line))


def _cover(image: Any) -> str | None:
    if not isinstance(image, dict):
        return None
    for key in ("original_url", "super_url", "medium_url"):
        url = clean_text(image.get(key))
        if url and url.startswith(("https://", "http://")) and "blank.png" not in url:
            return url
    return None


# --- as a metadata provider (collectz.providers.base) ----------------------------------------------------------


class ComicVineProvider(ClientProvider):
    """ComicVine as the enrichment service and the item form use it: comic book issues."""

    key = PROVIDER
    media_types = ("comic_book",)

    def by_identifier(self, kind: str, value: str) -> list[Candidate]:
        """By ComicVine issue id only: ComicVine's issues carry no barcode or ISBN."""
        return self.by_own_id(self.client.issue, value) if kind == "comicvine_id" else []

    def search(self, query: SearchQuery, *, limit: int = 10) -> list[Candidate]:
        """With an issue number: that issue in the best-ranked series of that name; else ComicVine's issue search.
        A year keeps issues whose cover date is in it."""
        series, number = split_issue_title(query)
        if not series:
            return []
        if number:
            volumes = [v["id"] for v in self.client.search_volumes(series)
                       if isinstance(v.get("id"), int) and not isinstance(v.get("id"), bool)]
            found = self.client.issues(volumes, number) if volumes else []
        else:
            found = self.client.search_issues(query.title or series, limit=SEARCH_LIMIT)
        if query.year:
            found = [c for c in found if c.year == query.year]
        return found[:limit]

    def details(self, candidate: Candidate) -> Candidate:
        if candidate.provider != self.key:
            return candidate
        return self.client.issue(candidate.provider_id)


def build(config: ProviderConfig, *, throttle: Throttle | None = None) -> ComicVineProvider:
    """The provider for the saved ComicVine card (its base URL, when set, is the address: e.g. a local fake)."""
    return ComicVineProvider(ComicVineClient.from_config(config, throttle=throttle))


__all__ = ["DEFAULT_BASE_URL", "PROVIDER", "ComicVineClient", "ComicVineHttp", "ComicVineProvider", "build",
           "credentials", "error_from_body", "html_text", "normalise_issue", "publisher_of"]
