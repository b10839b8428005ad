"""Open Library (openlibrary.org): books by ISBN or Open Library edition id, and title search, as `Candidate`s.

Calls, chosen for the fewest requests per answer:
- by ISBN or edition id: ONE call to the Books API, `GET /api/books?bibkeys=ISBN:…&jscmd=data&format=json`
  (openlibrary.org/dev/docs/api/books). Its "data" view already resolves the author names, the publishers, the
  work's subjects, the page count and the cover URLs; `/isbn/{isbn}.json` would need one more request per author
  (it only links `/authors/OL…A`) and one for the work's subjects.
- by title: `GET /search.json?title=…&author=…&fields=…` (openlibrary.org/dev/docs/api/search). Results are works;
  a candidate's id is the work's cover edition (`cover_edition_key`), so `details()` is one Books API call by OLID.
Covers are never fetched here: their URLs point at covers.openlibrary.org (openlibrary.org/dev/docs/api/covers).

No key. Open Library asks API clients to send a User-Agent naming the application (it then allows ~3 requests/s
instead of ~1); the shared throttle ("openlibrary") keeps to that. An unknown ISBN is `{}` (HTTP 200), not a 404.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from collectz.providers.base import EAN13, ISBN13, ClientProvider, SearchQuery
from collectz.providers.config import ProviderConfig
from collectz.providers.http import BadResponse, HttpClient
from collectz.providers.records import Candidate, as_dict, as_list, clean_text, name_of, positive_int
from collectz.services.identifiers import IdentifierError, normalise_isbn

if TYPE_CHECKING:
    from collectz.providers.throttle import Throttle

PROVIDER = "openlibrary"
DEFAULT_BASE_URL = "https://openlibrary.org"
DEFAULT_COVERS_URL = "https://covers.openlibrary.org"
USER_AGENT = "collectZ/0.1 (+https://github.com/collectz)"
CHECK_ISBN = "0451526538"  # the Books API documentation's own example
MAX_LIMIT = 100  # /search.json pages hold at most 100 docs
GENRE_LIMIT = 10  # Open Library subjects run to dozens per work; keep the first (most used) ones
SEARCH_FIELDS = ("key", "title", "subtitle", "author_name", "first_publish_year", "publish_year", "cover_i",
                 "cover_edition_key", "edition_key", "publisher", "number_of_pages_median", "subject")

_OLID = re.compile(r"OL\d+M")
_WORK_KEY = re.compile(r"/works/(OL\d+W)")
_EDITION_KEY = re.compile(r"/books/(OL\d+M)")
_COVER_ID_URL = re.compile(r"https?://covers\.openlibrary\.org/b/id/(\d+)-[SML]\.jpg")
_YEAR = re.compile(r"(?<!\d)(1[4-9]\d\d|20\d\d)(?!\d)")
_PAGES = re.compile(r"(\d+)\s*p\b")
_DATE_FORMATS = ("%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d %b %Y", "%Y-%m-%d", "%Y/%m/%d")
# Subjects that are bookkeeping, not genres ("nyt:hardcover-fiction=2008-01-01", "Accessible book", …).
_NOT_GENRES = frozenset({"accessible book", "protected daisy", "in library", "lending library", "large type books",
                         "open library staff picks", "overdrive", "internet archive wishlist"})


class OpenLibraryClient:
    """Calls Open Library through one `HttpClient` and returns Candidates."""

    def __init__(self, http: HttpClient, *, covers_url: str = DEFAULT_COVERS_URL) -> None:
        self.http = http
        self.provider = http.provider
        self.covers_url = covers_url.rstrip("/")

    def __repr__(self) -> str:
        return f"<OpenLibraryClient {self.http.base_url}>"

    @classmethod
    def from_config(cls, config: ProviderConfig, *, base_url: str = DEFAULT_BASE_URL,
                    covers_url: str = DEFAULT_COVERS_URL, throttle: Throttle | None = None) -> OpenLibraryClient:
        """A client for the Books card (no key; a base URL override points it at a mirror or a local fake)."""
        config = dataclasses.replace(config, provider=PROVIDER)  # the card is "books": errors name the service
        http = HttpClient.from_config(config, base_url, headers={"User-Agent": USER_AGENT}, throttle=throttle)
        return cls(http, covers_url=covers_url)

    # -- calls -----------------------------------------------------------------------------------------------------

    def check(self) -> None:
        """One cheap Books API call; raises a ProviderError when Open Library does not answer as documented."""
        self._books(f"ISBN:{CHECK_ISBN}")

    def edition_by_isbn(self, isbn: str) -> Candidate | None:
        """The edition with this ISBN (10 or 13 digits, any hyphens), or None when Open Library has none."""
        isbn13 = normalise_isbn(isbn)  # IdentifierError (a ValueError) before any request
        data = self._books(f"ISBN:{isbn13}")
        return normalise_edition(data, isbn13=isbn13, covers_url=self.covers_url) if data else None

    def edition(self, olid: str) -> Candidate | None:
        """The edition with this Open Library id ("OL7353617M"), or None."""
        value = str(olid or "").strip().upper()
        if not _OLID.fullmatch(value):
            raise ValueError(f"{olid!r} is not an Open Library edition id (OL…M)")
        data = self._books(f"OLID:{value}")
        return normalise_edition(data, covers_url=self.covers_url) if data else None

    def search(self, title: str, *, author: str | None = None, publisher: str | None = None,
               year: int | None = None, limit: int = 10) -> list[Candidate]:
        """Works whose title matches (and author, publisher), best first; `year` keeps works with an edition then.

        /search.json has no year parameter outside its query language, so the year narrows the page here, on the
        `publish_year` list (every edition's year), not on the first publication only.
        """
        title = " ".join(str(title or "").split())
        if not title:
            return []
        limit = max(1, min(int(limit), MAX_LIMIT))
        params: dict[str, Any] = {"title": title, "fields": ",".join(SEARCH_FIELDS), "limit": limit}
        if author and author.strip():
            params["author"] = " ".join(author.split())
        if publisher and publisher.strip():
            params["publisher"] = " ".join(publisher.split())
        body = self.http.get_json("/search.json", params=params)
        docs = _search_docs(body)
        found = [normalise_search_doc(doc, covers_url=self.covers_url) for doc in docs if _doc_in_year(doc, year)]
        return [candidate for candidate in found if candidate is not None][:limit]

    # -- internals ---------------------------------------------------------------------------------------------

    def _books(self, bibkey: str) -> dict[str, Any] | None:
        """The Books API's "data" document for one bibkey; None when Open Library knows no such book."""
        body = self.http.get_json("/api/books", params={"bibkeys": bibkey, "jscmd": "data", "format": "json"})
        if not isinstance(body, dict):
            raise BadResponse(self.provider, "GET /api/books: the answer is not a JSON object")
        document = body.get(bibkey)
        if document is None:
            return None
        if not isinstance(document, dict):
            raise BadResponse(self.provider, f"GET /api/books: the entry for {bibkey} is not a JSON object")
        return document


def _search_docs(body: Any) -> list[dict[str, Any]]:
    """The `docs` of a /search.json answer; an error body (`{"error": …}`) or another shape is a BadResponse."""
    if not isinstance(body, dict):
        raise BadResponse(PROVIDER, "GET /search.json: the answer is not a JSON object")
    if "error" in body:
        said = (clean_text(str(body.get("error"))) or "no message")[:200]
        raise BadResponse(PROVIDER, f"GET /search.json: Open Library says {said!r}")
    docs = body.get("docs")
    if not isinstance(docs, list):
        raise BadResponse(PROVIDER, "GET /search.json: the answer has no list of docs")
    return [doc for doc in docs if isinstance(doc, dict)]


def _doc_in_year(doc: dict[str, Any], year: int | None) -> bool:
    if year is None:
        return True
    years = {y for y in as_list(doc.get("publish_year")) if isinstance(y, int)}
    first = doc.get("first_publish_year")
    if isinstance(first, int):
        years.add(first)
    return not years or year in years  # a work without any year is not ruled out


# --- Open Library JSON → Candidate: the one place ----------------------------------------------------------------


def normalise_edition(data: dict[str, Any], *, isbn13: str | None = None,
                      covers_url: str = DEFAULT_COVERS_URL) -> Candidate:
    """An edition from the Books API's `jscmd=data` view. `isbn13` is the ISBN it was asked for, kept when the
    edition lists several."""
    if not isinstance(data, dict):
        raise BadResponse(PROVIDER, "an edition is not a JSON object")
    olid = _edition_id(data)
    title = clean_text(data.get("title"))
    if title is None:
        raise BadResponse(PROVIDER, f"edition {olid} has no title")
    identifiers = _edition_identifiers(olid, as_dict(data.get("identifiers")), isbn13)
    published = clean_text(data.get("publish_date"))
    publisher = next((n for n in (name_of(p) for p in as_list(data.get("publishers"))) if n), None)
    pages = positive_int(data.get("number_of_pages")) or _pages_from(data.get("pagination"))
    subtitle = clean_text(data.get("subtitle"))
    return Candidate(
        provider=PROVIDER, provider_id=olid, media_type="book", title=title,
        year=_year_of(published), release_date=_date_of(published),
        genres=_genres([name_of(s) for s in as_list(data.get("subjects"))]),
        people=[("author", name) for name in _names(data.get("authors"))],
        identifiers=identifiers, cover_url=_cover_url(as_dict(data.get("cover")).get("large"), covers_url),
        details={key: value for key, value in {"publisher": publisher, "pages": pages}.items() if value},
        extra={"subtitle": subtitle} if subtitle else {},
    )


def normalise_search_doc(doc: dict[str, Any], *, covers_url: str = DEFAULT_COVERS_URL) -> Candidate | None:
    """A work from /search.json, as a light candidate for its cover edition; None when it names no edition (there
    is then nothing a Books API call could complete)."""
    olid = _search_edition(doc)
    title = clean_text(doc.get("title"))
    if olid is None or title is None:
        return None
    identifiers = {"openlibrary_id": olid}
    work = _WORK_KEY.fullmatch(str(doc.get("key") or ""))
    if work:
        identifiers["openlibrary_work_id"] = work[1]
    publisher = next((n for n in (clean_text(p) for p in as_list(doc.get("publisher"))) if n), None)
    pages = positive_int(doc.get("number_of_pages_median"))
    first_year = doc.get("first_publish_year")
    cover_id = doc.get("cover_i")
    subtitle = clean_text(doc.get("subtitle"))
    return Candidate(
        provider=PROVIDER, provider_id=olid, media_type="book", title=title,
        year=first_year if isinstance(first_year, int) and not isinstance(first_year, bool) else None,
        genres=_genres([clean_text(s) for s in as_list(doc.get("subject"))]),
        people=[("author", name) for name in dict.fromkeys(
            n for n in (clean_text(a) for a in as_list(doc.get("author_name"))) if n)],
        identifiers=identifiers,
        cover_url=cover_url_for(cover_id, covers_url) if isinstance(cover_id, int) else None,
        details={key: value for key, value in {"publisher": publisher, "pages": pages}.items() if value},
        extra={"subtitle": subtitle} if subtitle else {},
    )


def cover_url_for(cover_id: int, covers_url: str = DEFAULT_COVERS_URL) -> str | None:
    """The large cover image of an Open Library cover id (Covers API: /b/id/{id}-L.jpg)."""
    if isinstance(cover_id, bool) or not isinstance(cover_id, int) or cover_id <= 0:
        return None
    return f"{covers_url.rstrip('/')}/b/id/{cover_id}-L.jpg"


def _cover_url(value: Any, covers_url: str) -> str | None:
    """A Books API cover URL, rebuilt from its cover id: only a covers.openlibrary.org image becomes a cover."""
    match = _COVER_ID_URL.fullmatch(value) if isinstance(value, str) else None
    return cover_url_for(int(match[1]), covers_url) if match else None


def _edition_id(data: dict[str, Any]) -> str:
    match = _EDITION_KEY.fullmatch(str(data.get("key") or ""))
    if match is None:
        raise BadResponse(PROVIDER, "an edition without a valid key (/books/OL…M)")
    return match[1]


def _search_edition(doc: dict[str, Any]) -> str | None:
    """The edition a work stands for: its cover edition, else the first edition listed."""
    for value in (doc.get("cover_edition_key"), *as_list(doc.get("edition_key"))[:1]):
        if isinstance(value, str) and _OLID.fullmatch(value):
            return value
    return None


def _edition_identifiers(olid: str, ids: dict[str, Any], asked: str | None) -> dict[str, str]:
    """ISBN-13 as the catalog stores it (the asked one, else the first valid ISBN-13 or ISBN-10), the edition id,
    and the other catalogues' ids Open Library lists, kept as item metadata."""
    isbns = [normalised for raw in (*as_list(ids.get("isbn_13")), *as_list(ids.get("isbn_10")))
             if (normalised := _isbn13(raw))]
    identifiers = {"openlibrary_id": olid}
    isbn13 = asked if asked and (asked in isbns or not isbns) else next(iter(isbns), None)
    if isbn13:
        identifiers["isbn13"] = isbn13
    for source, name in (("lccn", "lccn"), ("oclc", "oclc"), ("goodreads", "goodreads_id"),
                         ("librarything", "librarything_id")):
        value = next((clean_text(v) for v in as_list(ids.get(source)) if clean_text(v)), None)
        if value:
            identifiers[name] = value
    return identifiers


def _isbn13(raw: Any) -> str | None:
    if not isinstance(raw, str):
        return None
    try:
        return normalise_isbn(raw)
    except IdentifierError:
        return None  # Open Library keeps some mistyped ISBNs; a wrong one must not reach the catalog


def _names(value: Any) -> list[str]:
    return list(dict.fromkeys(n for n in (name_of(entry) for entry in as_list(value)) if n))


def _genres(subjects: list[str | None]) -> list[str]:
    """Subjects worth showing as genres: no bookkeeping tags, no "key:value" tags, each once, the first few."""
    kept: dict[str, str] = {}
    for subject in subjects:
        if not subject or ":" in subject or "=" in subject or subject.casefold() in _NOT_GENRES:
            continue
        kept.setdefault(subject.casefold(), subject)
    return list(kept.values())[:GENRE_LIMIT]


def _year_of(published: str | None) -> int | None:
    """The year in Open Library's free-text publish date ("1997", "April 1997", "c1997", "[1997?]")."""
    match = _YEAR.search(published or "")
    return int(match[1]) if match else None


def _date_of(published: str | None) -> date | None:
    """A full date when the publish date is one ("May 1, 1997", "1997-05-01"); None for a year or a month."""
    text = " ".join((published or "").replace(".", "").split())
    for form in _DATE_FORMATS:
        try:
            return datetime.strptime(text, form).date()
        except ValueError:
            continue
    return None


def _pages_from(pagination: Any) -> int | None:
    """Pages from a catalogue pagination statement ("xxi, 216 p. ;"), the last count given."""
    counts = _PAGES.findall(pagination) if isinstance(pagination, str) else []
    return positive_int(counts[-1]) if counts else None








# --- as a metadata provider (collectz.providers.base) ----------------------------------------------------------


class OpenLibraryProvider(ClientProvider):
    """Open Library as the enrichment service and the item form use it: books."""

    key = PROVIDER
    media_types = ("book",)

    def by_identifier(self, kind: str, value: str) -> list[Candidate]:
        """By ISBN (a book's EAN-13 barcode is its ISBN-13, so a 978/979 EAN works too); other kinds: []."""
        if kind not in (ISBN13, EAN13):
            return []
        compact = re.sub(r"[\s-]", "", str(value or ""))
        if kind == EAN13 and not compact.startswith(("978", "979")):
            return []  # not a book's barcode
        try:
            isbn13 = normalise_isbn(compact)
        except IdentifierError:
            return []
        found = self.client.edition_by_isbn(isbn13)
        return [found] if found else []

    def search(self, query: SearchQuery, *, limit: int = 10) -> list[Candidate]:
        if query.media_type not in (None, "book"):
            return []
        author = query.people[0] if query.people else None
        return self.client.search(query.title, author=author, publisher=query.publisher, year=query.year,
                                  limit=limit)

    def details(self, candidate: Candidate) -> Candidate:
        """The full edition (one Books API call by its OLID); unchanged when Open Library no longer has it."""
        if candidate.provider != self.key or not _OLID.fullmatch(candidate.provider_id):
            return candidate
        full = self.client.edition(candidate.provider_id)
        if full is None:
            return candidate
        work_id = candidate.identifiers.get("openlibrary_work_id")
        if work_id:
            full.identifiers.setdefault("openlibrary_work_id", work_id)
        full.genres = full.genres or candidate.genres
        return full


def build(config: ProviderConfig, *, throttle: Throttle | None = None,
          covers_url: str = DEFAULT_COVERS_URL) -> OpenLibraryProvider:
    """The provider for the saved Books card (its base URL, when set, is the address: e.g. a local fake)."""
    return OpenLibraryProvider(OpenLibraryClient.from_config(config, covers_url=covers_url, throttle=throttle))


__all__ = ["DEFAULT_BASE_URL", "DEFAULT_COVERS_URL", "PROVIDER", "USER_AGENT", "OpenLibraryClient",
           "OpenLibraryProvider", "build", "cover_url_for", "normalise_edition", "normalise_search_doc"]
