"""Google Books (Books API v1): volumes by ISBN and by title/author, answered as our `Candidate`s.

Calls (developers.google.com/books/docs/v1/using and /reference/volumes):
- by ISBN: `GET /books/v1/volumes?q=isbn:…` — one call; list results carry the whole `volumeInfo` we use.
- by title: `GET /books/v1/volumes?q=intitle:"…" inauthor:… inpublisher:"…"&printType=books&maxResults=…`.
- details: `GET /books/v1/volumes/{id}`, which adds the larger cover sizes and the full category paths.
An empty result is `{"kind": "books#volumes", "totalItems": 0}` (no `items`).

The key (secret `google_api_key` of the Books card) is optional: without it Google answers from a smaller shared
quota. It travels as the `key` query parameter, which `HttpClient` keeps out of every message. Google reports a
refused key as HTTP 400 with `API_KEY_INVALID` in the error body and a spent quota as 429 (older answers: 403 with
reason `dailyLimitExceeded`/`rateLimitExceeded`), so `GoogleHttpClient` reads the error body before the status.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import requests

from collectz.providers.base import EAN13, ISBN13, ClientProvider, SearchQuery
from collectz.providers.config import ProviderConfig
from collectz.providers.http import (
    BadCredentials,
    BadResponse,
    HttpClient,
    ProviderError,
    RateLimited,
    parse_retry_after,
)
from collectz.providers.records import Candidate, as_dict, as_list, clean_text, positive_int
from collectz.services.identifiers import IdentifierError, normalise_isbn

if TYPE_CHECKING:
    from collectz.providers.throttle import Throttle

PROVIDER = "googlebooks"
DEFAULT_BASE_URL = "https://www.googleapis.com"
VOLUMES = "/books/v1/volumes"
CHECK_ISBN = "9780553804577"  # the volume of the "Using the API" examples (The Google Story)
MAX_RESULTS = 40  # the Books API's largest page
COVER_SIZES = ("extraLarge", "large", "medium", "small", "thumbnail", "smallThumbnail")  # largest first
COVER_HOSTS = ("books.google.com", "books.googleusercontent.com")

_VOLUME_ID = re.compile(r"[A-Za-z0-9_-]{6,24}")
_CREDENTIAL_REASONS = frozenset({"API_KEY_INVALID", "keyInvalid", "API_KEY_SERVICE_BLOCKED", "accessNotConfigured",
                                 "SERVICE_DISABLED"})
_RATE_REASONS = frozenset({"RATE_LIMIT_EXCEEDED", "rateLimitExceeded", "dailyLimitExceeded",
                           "userRateLimitExceeded", "quotaExceeded"})


class GoogleHttpClient(HttpClient):
    """`HttpClient` that reads Google's error body first: Google says "bad key" with a 400 and "quota spent" with a
    403 as often as with 429, so the status alone would call both a bad response or a bad key."""

    def error_for(self, response: requests.Response, where: str) -> ProviderError | None:
        if response.status_code not in (400, 403):
            return None
        return error_from_body(_json_or_none(response), where, provider=self.provider,
                               retry_after=parse_retry_after(response.headers.get("Retry-After")))


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def error_from_body(body: Any, where: str, *, provider: str = PROVIDER,
                    retry_after: float | None = None) -> BadCredentials | RateLimited | None:
    """The error a Google API error body (`{"error": {"code", "message", "errors": [{"reason"}], "status",
    "details": [{"reason"}]}}`) describes when it is about the key or the quota; None otherwise."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    reasons = {entry.get("reason") for key in ("errors", "details") for entry in as_list(error.get(key))
               if isinstance(entry, dict)}
    said = (clean_text(error.get("message")) or "no message")[:200]
    if reasons & _CREDENTIAL_REASONS:
        return BadCredentials(provider, f"{where}: Google refused the API key ({said!r}); check it in the Books "
                                        "integration's settings, or leave it empty")
    if reasons & _RATE_REASONS or error.get("status") == "RESOURCE_EXHAUSTED":
        return RateLimited(provider, f"{where}: Google Books quota exceeded ({said!r})", retry_after=retry_after)
    return None


class GoogleBooksClient:
    """Calls the Books API through one `GoogleHttpClient` (which carries the optional key) and returns Candidates."""

    def __init__(self, http: HttpClient) -> None:
        self.http = http
        self.provider = http.provider

    def __repr__(self) -> str:
        return f"<GoogleBooksClient {self.http.base_url}>"

    @classmethod
    def from_config(cls, config: ProviderConfig, *, base_url: str = DEFAULT_BASE_URL,
                    throttle: Throttle | None = None) -> GoogleBooksClient:
        """A client for the Books card: its `google_api_key` secret when set, its base URL if overridden."""
        config = dataclasses.replace(config, provider=PROVIDER)  # the card is "books": errors name the service
        key = config.secret("google_api_key").strip()
        http = GoogleHttpClient.from_config(config, base_url, params={"key": key} if key else {}, throttle=throttle)
        return cls(http)

    # -- calls -----------------------------------------------------------------------------------------------------

    def check(self) -> None:
        """One small volumes search (with the key, when set): raises a ProviderError when it fails."""
        self._volumes(f"isbn:{CHECK_ISBN}", 1)

    def by_isbn(self, isbn: str) -> list[Candidate]:
        """Volumes with this ISBN (10 or 13 digits, any hyphens); usually 0 or 1."""
        isbn13 = normalise_isbn(isbn)  # IdentifierError (a ValueError) before any request
        return [normalise_volume(item, isbn13=isbn13) for item in self._volumes(f"isbn:{isbn13}", 10)]

    def search(self, title: str, *, authors: tuple[str, ...] = (), publisher: str | None = None,
               year: int | None = None, limit: int = 10) -> list[Candidate]:
        """Volumes by title (and author surname, publisher), Google's order; `year` filters on the published date
        here, as the API has no year operator."""
        q = search_terms(title, authors=authors, publisher=publisher)
        if q is None:
            return []
        found = [normalise_volume(item) for item in self._volumes(q, max(1, min(int(limit), MAX_RESULTS)))]
        return [c for c in found if year is None or c.year in (None, year)][:limit]

    def volume(self, volume_id: str) -> Candidate:
        """One volume in full (larger covers, full category paths)."""
        value = str(volume_id or "").strip()
        if not _VOLUME_ID.fullmatch(value):
            raise ValueError(f"{volume_id!r} is not a Google Books volume id")
        body = self.http.get_json(f"{VOLUMES}/{value}")
        return normalise_volume(body)

    # -- internals ---------------------------------------------------------------------------------------------

    def _volumes(self, q: str, max_results: int) -> list[dict[str, Any]]:
        body = self.http.get_json(VOLUMES, params={"q": q, "printType": "books", "maxResults": max_results})
        return volume_items(body)


def volume_items(body: Any) -> list[dict[str, Any]]:
    """The volumes of a `books#volumes` answer; `items` is absent when nothing matched. Another shape is a
    BadResponse."""
    if not isinstance(body, dict) or body.get("kind") != "books#volumes":
        raise BadResponse(PROVIDER, f"GET {VOLUMES}: the answer is not a volumes list")
    items = body.get("items", [])
    if not isinstance(items, list):
        raise BadResponse(PROVIDER, f"GET {VOLUMES}: the answer's items is not a list")
    return [item for item in items if isinstance(item, dict)]


def search_terms(title: str, *, authors: tuple[str, ...] = (), publisher: str | None = None) -> str | None:
    """The `q` of a title search: `intitle:"…"` (quoted, so every word counts), `inauthor:` with each author's
    last name (how "J. R. R. Tolkien" and "J.R.R. Tolkien" both match), `inpublisher:"…"`; None without a title."""
    title = _phrase(title)
    if not title:
        return None
    terms = [f'intitle:"{title}"']
    for author in authors:
        words = _phrase(author).split()
        if words:
            terms.append(f"inauthor:{words[-1]}")
    if publisher and _phrase(publisher):
        terms.append(f'inpublisher:"{_phrase(publisher)}"')
    return " ".join(terms)


def _phrase(text: str | None) -> str:
    """Text safe inside a quoted search term: no quotes, no colons, single spaces."""
    return " ".join(re.sub(r'["“”:]', " ", text or "").split())


# --- Google Books JSON → Candidate: the one place ----------------------------------------------------------------


def normalise_volume(data: dict[str, Any], *, isbn13: str | None = None) -> Candidate:
    """A volume (`books#volume`) from a volumes list or /volumes/{id}. `isbn13` is the ISBN asked for."""
    if not isinstance(data, dict):
        raise BadResponse(PROVIDER, "a volume is not a JSON object")
    volume_id = data.get("id")
    if not isinstance(volume_id, str) or not _VOLUME_ID.fullmatch(volume_id):
        raise BadResponse(PROVIDER, "a volume without a valid id")
    info = as_dict(data.get("volumeInfo"))
    title = clean_text(info.get("title"))
    if title is None:
        raise BadResponse(PROVIDER, f"volume {volume_id} has no title")
    published = clean_text(info.get("publishedDate"))
    subtitle = clean_text(info.get("subtitle"))
    details = {"publisher": clean_text(info.get("publisher")),
               "pages": positive_int(info.get("pageCount")) or positive_int(info.get("printedPageCount"))}
    return Candidate(
        provider=PROVIDER, provider_id=volume_id, media_type="book", title=title,
        year=_year_of(published), release_date=_date_of(published), overview=clean_text(info.get("description")),
        rating=_rating(info), genres=_genres(info),
        people=[("author", n) for n in dict.fromkeys(a for a in (clean_text(x) for x in as_list(info.get("authors")))
                                                     if a)],
        identifiers=_identifiers(volume_id, info, isbn13), cover_url=_cover(as_dict(info.get("imageLinks"))),
        details={key: value for key, value in details.items() if value},
        extra={"subtitle": subtitle} if subtitle else {},
    )


def _identifiers(volume_id: str, info: dict[str, Any], asked: str | None) -> dict[str, str]:
    """ISBN-13 as the catalog stores it (the asked one when listed, else ISBN_13, else ISBN_10) and the volume id."""
    found: dict[str, str] = {}
    for entry in as_list(info.get("industryIdentifiers")):
        if isinstance(entry, dict) and entry.get("type") in ("ISBN_13", "ISBN_10"):
            try:
                found.setdefault(entry["type"], normalise_isbn(str(entry.get("identifier") or "")))
            except IdentifierError:
                continue  # a mistyped ISBN must not reach the catalog
    isbns = [found[kind] for kind in ("ISBN_13", "ISBN_10") if kind in found]
    isbn13 = asked if asked and (asked in isbns or not isbns) else next(iter(isbns), None)
    identifiers = {"googlebooks_id": volume_id}
    if isbn13:
        identifiers["isbn13"] = isbn13
    return identifiers


def _genres(info: dict[str, Any]) -> list[str]:
    """Category paths ("Fiction / Fantasy / Epic") as their parts, each once; "General" says nothing."""
    parts = [part.strip() for category in as_list(info.get("categories")) if isinstance(category, str)
             for part in category.split("/")]
    kept: dict[str, str] = {}
    for part in parts:
        if part and part.casefold() != "general":
            kept.setdefault(part.casefold(), part)
    return list(kept.values())


def _rating(info: dict[str, Any]) -> float | None:
    """Google's average (1–5 stars) on our 0–10 scale; None without ratings."""
    average, count = info.get("averageRating"), info.get("ratingsCount")
    if isinstance(average, bool) or not isinstance(average, int | float) or not 0 < average <= 5:
        return None
    if isinstance(count, int) and count <= 0:
        return None
    return round(float(average) * 2, 2)


def _cover(links: dict[str, Any]) -> str | None:
    """The largest cover Google links to, over https and without the page-curl effect; Google's hosts only."""
    for size in COVER_SIZES:
        url = links.get(size)
        if not isinstance(url, str):
            continue
        parts = urlsplit(url.strip())
        if parts.scheme not in ("http", "https") or parts.hostname not in COVER_HOSTS:
            continue
        query = "&".join(p for p in parts.query.split("&") if p and p != "edge=curl")
        return urlunsplit(("https", parts.netloc, parts.path, query, ""))
    return None


def _year_of(published: str | None) -> int | None:
    match = re.match(r"(\d{4})", published or "")
    return int(match[1]) if match else None


def _date_of(published: str | None) -> date | None:
    """A full date ("2005-11-15"); None for "2005" or "2005-11"."""
    try:
        return date.fromisoformat(published) if published and len(published) == 10 else None
    except ValueError:
        return None






# --- as a metadata provider (collectz.providers.base) ----------------------------------------------------------


class GoogleBooksProvider(ClientProvider):
    """Google Books as the enrichment service and the item form use it: books."""

    key = PROVIDER
    media_types = ("book",)

    def by_identifier(self, kind: str, value: str) -> list[Candidate]:
        """By ISBN (or a book's 978/979 EAN-13, which is its ISBN-13); other kinds and invalid values: []."""
        if kind not in (ISBN13, EAN13):
            return []
        compact = re.sub(r"[\s-]", "", str(value or ""))
        if kind == EAN13 and not compact.startswith(("978", "979")):
            return []
        try:
            isbn13 = normalise_isbn(compact)
        except IdentifierError:
            return []
        return self.client.by_isbn(isbn13)

    def search(self, query: SearchQuery, *, limit: int = 10) -> list[Candidate]:
        if query.media_type not in (None, "book"):
            return []
        return self.client.search(query.title, authors=query.people, publisher=query.publisher, year=query.year,
                                  limit=limit)

    def details(self, candidate: Candidate) -> Candidate:
        """The volume in full (one call); other providers' candidates unchanged."""
        if candidate.provider != self.key:
            return candidate
        full = self.client.volume(candidate.provider_id)
        asked = candidate.identifiers.get("isbn13")
        if asked and "isbn13" not in full.identifiers:
            full.identifiers["isbn13"] = asked
        return full


def build(config: ProviderConfig, *, throttle: Throttle | None = None) -> GoogleBooksProvider:
    """The provider for the saved Books card (its base URL, when set, is the address: e.g. a local fake)."""
    return GoogleBooksProvider(GoogleBooksClient.from_config(config, throttle=throttle))


__all__ = ["DEFAULT_BASE_URL", "PROVIDER", "GoogleBooksClient", "GoogleBooksProvider", "GoogleHttpClient", "build",
           "error_from_body", "normalise_volume", "search_terms", "volume_items"]
