"""The Grand Comics Database (comics.org): issue search and details from its public JSON API, as `Candidate`s.

GCD's API (https://www.comics.org/api/, documented on the gcd-django wiki "API" page and defined by the project's
apps/api urls, views and serializers) is read-only Django REST framework: JSON with `format=json`, no key, DRF's
paging envelope `{"count", "next", "previous", "results"}` and DRF's `{"detail": …}` error bodies (429 +
Retry-After when throttled). It offers issue and series documents by id and two name searches:
`/api/series/name/{name}/[year/{year}/]` (series whose name contains it) and
`/api/series/name/{name}/issue/{number}/[year/{year}/]` (issues of those series with that number, key date in
that year). It has no barcode or ISBN search, so `by_identifier` answers only GCD ids.

`normalise_issue` (an /api/issue/{id}/ document), `normalise_issue_summary` (an issue search result) and
`normalise_series` (a series document or search result) are the one place GCD's JSON becomes a Candidate.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from collectz.providers.base import ClientProvider, SearchQuery
from collectz.providers.config import ProviderConfig
from collectz.providers.http import BadCredentials, BadResponse, HttpClient, NotFoundAt, ProviderError
from collectz.providers.metron import barcode_parts, split_issue_title
from collectz.providers.records import Candidate, as_list, clean_text, parse_date, path_id
from collectz.services.identifiers import IdentifierError, normalise_isbn

if TYPE_CHECKING:
    from collectz.providers.throttle import Throttle

PROVIDER = "gcd"
DEFAULT_BASE_URL = "https://www.comics.org"
USER_AGENT = "collectZ/0.1 (+https://github.com/collectz)"

# A story's credit fields → our roles (GCD's script/pencils/inks/colors; letters and editing are not kept).
_CREDIT_ROLES = (("script", "writer"), ("pencils", "artist"), ("inks", "inker"), ("colors", "colorist"))
_SERIES_NAME = re.compile(r"^(?P<name>.*?)\s*\((?P<year>\d{4}) series\)\s*$")
_API_ID = re.compile(r"/api/(?P<kind>issue|series)/(?P<id>\d+)/")
_NOTES = re.compile(r"\s*(\([^()]*\)|\[[^\[\]]*\])")
_YEAR = re.compile(r"\b(1[89]\d\d|2\d\d\d)\b")


class GcdClient:
    """Calls the GCD API through one `HttpClient` and returns Candidates."""

    def __init__(self, http: HttpClient) -> None:
        self.http = http
        self.provider = http.provider

    def __repr__(self) -> str:
        return f"<GcdClient {self.http.base_url}>"

    @classmethod
    def from_config(cls, config: ProviderConfig, *, throttle: Throttle | None = None) -> GcdClient:
        """A client for the saved Comics card: GCD needs no key, only a polite User-Agent."""
        return cls(HttpClient.from_config(config, DEFAULT_BASE_URL, headers={"User-Agent": USER_AGENT},
                                          throttle=throttle))

    def check(self) -> None:
        """One cheap call: the first page of publishers."""
        self._page("/api/publisher/", what="the publisher list")

    def search_issues(self, series: str, number: str, *, year: int | None = None) -> list[Candidate]:
        """Issues numbered `number` of the series whose name contains `series` (key date in `year`): light, the
        original printing before its variants."""
        path = f"/api/series/name/{_segment(series)}/issue/{_segment(number)}/"
        if year:
            path += f"year/{int(year)}/"
        found = [normalise_issue_summary(item) for item in self._page(path, what="issues")]
        return sorted(found, key=lambda c: "variant_of" in c.extra)

    def search_series(self, name: str, *, year: int | None = None) -> list[Candidate]:
        """Series whose name contains `name` (and that began in `year`)."""
        path = f"/api/series/name/{_segment(name)}/"
        if year:
            path += f"year/{int(year)}/"
        return [normalise_series(item) for item in self._page(path, what="series")]

    def issue(self, issue_id: int | str) -> Candidate:
        """An issue in full: credits from its stories, barcode, ISBN, cover."""
        number = _gcd_id(issue_id)
        return normalise_issue(self._get(f"/api/issue/{number}/", what=f"issue {number}"))

    def series(self, series_id: int | str) -> Candidate:
        number = _gcd_id(series_id)
        return normalise_series(self._get(f"/api/series/{number}/", what=f"series {number}"))

    # -- internals ---------------------------------------------------------------------------------------------

    def _page(self, path: str, *, what: str) -> list[dict[str, Any]]:
        body = self._get(path, what=what)
        results = body.get("results")
        if not isinstance(results, list) or not isinstance(body.get("count"), int):
            raise BadResponse(self.provider, f"GET {path}: the answer is not a page of results")
        return [item for item in results if isinstance(item, dict)]

    def _get(self, path: str, *, what: str) -> dict[str, Any]:
        try:
            body = self.http.get_json(path, params={"format": "json"})
        except NotFoundAt as exc:
            failure: ProviderError = NotFoundAt(self.provider, f"the GCD has no {what} ({exc.message})")
        except BadCredentials as exc:
            failure = BadCredentials(self.provider, "the GCD refused the request (it asks no key: is this address "
                                                    f"blocked, or the API closed to anonymous use?) ({exc.message})")
        else:
            if not isinstance(body, dict):
                raise BadResponse(self.provider, f"GET {path}: the answer is not a JSON object")
            return body
        raise failure


def _segment(text: str) -> str:
    """A name or number as one path segment (GCD takes them in the path, not the query)."""
    value = " ".join(str(text).split())
    if not value:
        raise ValueError("a GCD search needs a name")
    return quote(value, safe="")


def _gcd_id(value: int | str) -> int:
    return path_id(value, "a GCD id")


# --- GCD JSON → Candidate: the one place -------------------------------------------------------------------------


def normalise_issue(data: dict[str, Any]) -> Candidate:
    """An issue from /api/issue/{id}/ (IssueSerializer): stories, credits, barcode, ISBN, cover."""
    issue_id = _api_id(data, "issue")
    series, series_year = _series_name(data.get("series_name"))
    number = clean_text(data.get("number")) or _number(data.get("descriptor"))
    title = clean_text(data.get("title")) or _issue_title(series, number)
    if title is None:
        raise BadResponse(PROVIDER, f"issue {issue_id} has no series name")
    stories = [s for s in as_list(data.get("story_set")) if isinstance(s, dict)]
    comic = [s for s in stories if clean_text(s.get("type")) == "comic story"]
    extra = _extra(data, series_year)
    titles = [t for t in (clean_text(s.get("title")) for s in comic) if t]
    if titles:
        extra["story_title"] = "; ".join(titles)
    identifiers = {"gcd_id": str(issue_id)}
    ean, supplement = barcode_parts(data.get("barcode"))
    if ean:
        identifiers["ean13"] = ean
    if supplement:
        extra["upc_supplement"] = supplement
    if isbn := _isbn13(data.get("isbn")):
        identifiers["isbn13"] = isbn
    details = {"series": series, "issue": number, "volume": clean_text(data.get("volume")),
               "publisher": clean_text(data.get("indicia_publisher")),
               "cover_date": clean_text(data.get("publication_date")), "pages": _pages(data.get("page_count"))}
    return Candidate(
        provider=PROVIDER, provider_id=str(issue_id), media_type="comic_book", title=title,
        year=_key_year(data.get("key_date")) or _year_in(data.get("publication_date")),
        release_date=parse_date(data.get("on_sale_date")),
        overview=next((t for t in (clean_text(s.get("synopsis")) for s in comic) if t), None),
        genres=_genres(comic), people=_people(stories), identifiers=identifiers,
        cover_url=_url(data.get("cover")), details={k: v for k, v in details.items() if v not in (None, "")},
        extra=extra,
    )


def normalise_issue_summary(data: dict[str, Any]) -> Candidate:
    """An issue search result (IssueOnlySerializer: api_url, series_name, descriptor, publication_date, price,
    page_count, variant_of, series): a light candidate."""
    issue_id = _api_id(data, "issue")
    series, series_year = _series_name(data.get("series_name"))
    number = _number(data.get("descriptor"))
    title = _issue_title(series, number)
    if title is None:
        raise BadResponse(PROVIDER, f"issue {issue_id} has no series name")
    details = {"series": series, "issue": number, "cover_date": clean_text(data.get("publication_date")),
               "pages": _pages(data.get("page_count"))}
    return Candidate(
        provider=PROVIDER, provider_id=str(issue_id), media_type="comic_book", title=title,
        year=_year_in(data.get("publication_date")), identifiers={"gcd_id": str(issue_id)},
        details={k: v for k, v in details.items() if v not in (None, "")}, extra=_extra(data, series_year),
    )


def normalise_series(data: dict[str, Any]) -> Candidate:
    """A series (SeriesSerializer) as a candidate for a comic whose issue is not known: the series' name and the
    year it began. Its provider id is "series-{id}", so it is never taken for an issue."""
    series_id = _api_id(data, "series")
    name = clean_text(data.get("name"))
    if name is None:
        raise BadResponse(PROVIDER, f"series {series_id} has no name")
    year = data.get("year_began")
    extra = {"gcd_series_id": str(series_id)}
    if fmt := clean_text(data.get("publishing_format")):
        extra["publishing_format"] = fmt
    return Candidate(
        provider=PROVIDER, provider_id=f"series-{series_id}", media_type="comic_book", title=name,
        year=year if isinstance(year, int) and not isinstance(year, bool) and year > 0 else None,
        details={"series": name}, extra=extra,
    )


def _extra(data: dict[str, Any], series_year: str | None) -> dict[str, str]:
    extra: dict[str, str] = {}
    if series_year:
        extra["series_year_began"] = series_year
    if variant := clean_text(data.get("variant_name")):
        extra["variant"] = variant
    if isinstance(data.get("variant_of"), str) and (match := _API_ID.search(data["variant_of"])):
        extra["variant_of"] = f"gcd:{match['id']}"
    if price := clean_text(data.get("price")):
        extra["cover_price"] = price
    return extra


def _people(stories: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """Writers, artists, inkers and colorists of every story (cover included), in order, each once."""
    people: list[tuple[str, str]] = []
    for story in stories:
        for field, role in _CREDIT_ROLES:
            people += [(role, name) for name in credit_names(story.get(field))]
    return list(dict.fromkeys(people))


def credit_names(value: Any) -> list[str]:
    """Names in a GCD credit string ("A (credited) (signed as B); C [as D]?"): notes in () and [] and the "?" of
    an uncertain credit dropped; "None" (no such credit) and "" give []."""
    text = clean_text(value)
    if text is None or text.casefold() == "none":
        return []
    names = []
    for part in text.split(";"):
        previous = None
        while previous != part:  # notes may be nested: strip from the inside out
            previous, part = part, _NOTES.sub("", part)
        name = " ".join(part.replace("?", " ").split())
        if name and name.casefold() not in ("none", "various", "unknown"):
            names.append(name)
    return names


def _genres(stories: list[dict[str, Any]]) -> list[str]:
    genres = []
    for story in stories:
        for genre in re.split(r"[;,]", clean_text(story.get("genre")) or ""):
            genre = genre.strip()
            if genre:
                genres.append(genre[0].upper() + genre[1:])
    return list(dict.fromkeys(genres))


def _series_name(value: Any) -> tuple[str | None, str | None]:
    """GCD names a series "Green Lantern (2005 series)": (name, year it began)."""
    text = clean_text(value)
    if text is None:
        return None, None
    match = _SERIES_NAME.match(text)
    return (match["name"], match["year"]) if match else (text, None)


def _number(descriptor: Any) -> str | None:
    """The issue number from a descriptor ("1 [Direct Sales - … Cover]" → "1")."""
    text = clean_text(descriptor)
    if text is None:
        return None
    return clean_text(text.split("[", 1)[0])


def _issue_title(series: str | None, number: str | None) -> str | None:
    if series is None:
        return None
    return f"{series} #{number}" if number and number != "[nn]" else series


def _key_year(value: Any) -> int | None:
    """The year of a key date ("2005-07-00": GCD writes an unknown day or month as 00)."""
    text = clean_text(value) or ""
    return int(text[:4]) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) and text[:4] != "0000" else None


def _year_in(value: Any) -> int | None:
    match = _YEAR.search(clean_text(value) or "")
    return int(match[1]) if match else None


def _pages(value: Any) -> int | None:
    """GCD's page count ("48.000"); None when unknown (0) or fractional nonsense."""
    try:
        pages = int(float(str(value)))
    except ValueError:
        return None
    return pages if pages > 0 else None


def _isbn13(value: Any) -> str | None:
    text = clean_text(value)
    if text is None:
        return None
    try:
        return normalise_isbn(text.split(";")[0])
    except IdentifierError:
        return None


def _url(value: Any) -> str | None:
    url = clean_text(value)
    return url if url and url.startswith(("https://", "http://")) else None


def _api_id(data: Any, kind: str) -> int:
    """GCD documents carry no id field: the id is in `api_url`."""
    if not isinstance(data, dict):
        raise BadResponse(PROVIDER, f"a {kind} is not a JSON object")
    match = _API_ID.search(data.get("api_url") or "") if isinstance(data.get("api_url"), str) else None
    if match is None or match["kind"] != kind:
        raise BadResponse(PROVIDER, f"a {kind} without a valid api_url")
    return int(match["id"])




# --- as a metadata provider (collectz.providers.base) ----------------------------------------------------------


class GcdProvider(ClientProvider):
    """The Grand Comics Database as the enrichment service and the item form use it: comic book issues."""

    key = PROVIDER
    media_types = ("comic_book",)

    def by_identifier(self, kind: str, value: str) -> list[Candidate]:
        """By GCD issue id only: the GCD API has no barcode or ISBN search."""
        return self.by_own_id(self.client.issue, value) if kind == "gcd_id" else []

    def search(self, query: SearchQuery, *, limit: int = 10) -> list[Candidate]:
        """With an issue number: that issue of the series named (its key date in `year`); without: the series."""
        series, number = split_issue_title(query)
        if not series:
            return []
        if number:
            return self.client.search_issues(series, number, year=query.year)[:limit]
        return self.client.search_series(series, year=query.year)[:limit]

    def details(self, candidate: Candidate) -> Candidate:
        """An issue in full; a series candidate stays as it is (it names no issue)."""
        if candidate.provider != self.key or not candidate.provider_id.isdigit():
            return candidate
        return self.client.issue(candidate.provider_id)


def build(config: ProviderConfig, *, throttle: Throttle | None = None) -> GcdProvider:
    """The provider for the saved Comics card (its base URL, when set, is the address: e.g. a local fake)."""
    return GcdProvider(GcdClient.from_config(config, throttle=throttle))


__all__ = ["DEFAULT_BASE_URL", "PROVIDER", "GcdClient", "GcdProvider", "build", "credit_names",
           "normalise_issue", "normalise_issue_summary", "normalise_series"]
