"""What every metadata provider offers the enrichment service, the import jobs and the item form.

A provider module (tmdb, openlibrary, googlebooks, musicbrainz, discogs, igdb, metron, gcd, comicvine, upcitemdb,
barcodelookup) exposes a class implementing `MetadataProvider` and a module-level `build(config)` that makes one
from the integration card's saved configuration (`collectz.providers.config.ProviderConfig`). Clients talk HTTP only
through `collectz.providers.http.HttpClient` (URL policy, timeouts, error mapping, throttling) and return our own
`collectz.providers.records.Candidate`s, normalised in one place per provider.

Errors are the `collectz.providers.http.ProviderError` subclasses: Unreachable, Unavailable (5xx), BadCredentials,
RateLimited (with retry_after), NotFoundAt, BadResponse, UrlRejected. "Nothing found" is an empty list, not an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from collectz.providers.http import NotFoundAt
from collectz.providers.records import Candidate

# Identifier kinds a provider may look up by. Values are normalised as the catalog stores them: ISBN-13 and EAN-13
# (a UPC-A is an EAN-13 with a leading 0), TMDB ids as digits, IMDb ids as "tt…".
ISBN13 = "isbn13"
EAN13 = "ean13"
TMDB_ID = "tmdb_id"
IMDB_ID = "imdb_id"
ASIN = "asin"
IDENTIFIER_KINDS = (ISBN13, EAN13, TMDB_ID, IMDB_ID, ASIN)


@dataclass(frozen=True)
class SearchQuery:
    """A title search, with what else the item says (each narrows or ranks the candidates)."""

    title: str
    media_type: str | None = None  # our media type key (movie, tv_series, book, audio, game, comic_book, ...)
    year: int | None = None
    people: tuple[str, ...] = field(default_factory=tuple)  # author(s), artist(s), director(s): names as written
    platform: str | None = None  # games
    publisher: str | None = None
    series: str | None = None  # comics: the series name; title may then be the issue's
    number: str | None = None  # comics: the issue number


@runtime_checkable
class MetadataProvider(Protocol):
    """One provider, configured and ready."""

    key: str  # the provider's own key, e.g. "openlibrary" (also Candidate.provider)
    media_types: tuple[str, ...]  # the media types it knows

    def check(self) -> None:
        """One cheap authenticated call; raises a ProviderError subclass when it does not work."""

    def by_identifier(self, kind: str, value: str) -> list[Candidate]:
        """Candidates for an exact identifier (kinds it does not support: []). Usually 0 or 1, full details."""

    def search(self, query: SearchQuery, *, limit: int = 10) -> list[Candidate]:
        """Candidates for a title (+ year, people...), best first as the provider ranks them; may be light."""

    def details(self, candidate: Candidate) -> Candidate:
        """The candidate with everything the provider knows (people, genres, identifiers, cover); a provider whose
        search results are already complete returns it unchanged."""


class ClientProvider:
    """The frame every provider class shares: it wraps one client, whose check() is the provider's; subclasses
    set `key` and `media_types` and implement by_identifier, search and (when search results are light) details."""

    key: str = ""
    media_types: tuple[str, ...] = ()

    def __init__(self, client: Any) -> None:
        self.client = client

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.client!r}>"

    def check(self) -> None:
        self.client.check()

    @staticmethod
    def by_own_id(fetch: Callable[[str], Candidate], value: str) -> list[Candidate]:
        """[the candidate the provider's own id names], or [] when that id is malformed or unknown to it."""
        try:
            return [fetch(value)]
        except (ValueError, NotFoundAt):
            return []

    def details(self, candidate: Candidate) -> Candidate:
        return candidate
