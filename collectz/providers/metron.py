"""Metron (metron.cloud, the community comic database): issue search and details, answered as our `Candidate`s.

Metron's REST API (https://metron.cloud/api/, documented in the project's api/README.md and the Swagger UI at
/docs/) needs HTTP Basic auth with the member's user name and password on every request, asks clients to identify
themselves with a User-Agent, pages lists as `{"count", "next", "previous", "results"}` and answers a burst past
its limit (20 a minute) with 429 + Retry-After. `normalise_issue` (an /api/issue/{id}/ document) and
`normalise_issue_list_item` (one entry of /api/issue/) are the one place Metron's JSON becomes a Candidate.
"""

from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING, Any

from collectz.providers.base import EAN13, ClientProvider, SearchQuery
from collectz.providers.config import ProviderConfig
from collectz.providers.http import BadCredentials, BadResponse, HttpClient, NotFoundAt, ProviderError
from collectz.providers.records import Candidate, as_dict, as_list, clean_text, parse_date, path_id, positive_int
from collectz.services.identifiers import IdentifierError, normalise_ean, normalise_isbn

if TYPE_CHECKING:
    from collectz.providers.throttle import Throttle

PROVIDER = "metron"
DEFAULT_BASE_URL = "https://metron.cloud"
USER_AGENT = "collectZ/0.1 (+https://github.com/collectz)"
DETAILS_PER_BARCODE = 3  # a barcode names one issue; a few more are variants sharing it at most

# Metron's credit roles → ours. Roles we do not keep as people (editors, letterers, cover artists…) are left out
# or kept as item metadata (see _EXTRA_ROLES).
_ROLE_MAP: dict[str, str] = {
    "writer": "writer", "script": "writer", "scripter": "writer", "story": "writer", "plot": "writer",
    "plotter": "writer", "artist": "artist", "penciller": "artist", "breakdowns": "artist", "layouts": "artist",
    "illustrator": "artist", "inker": "inker", "finishes": "inker", "colorist": "colorist", "colors": "colorist",
}
_EXTRA_ROLES: dict[str, str] = {"cover": "cover_artist", "letterer": "letterer"}
_NUMBER_IN_TITLE = re.compile(r"^(?P<series>.+?)\s*#\s*(?P<number>[^\s#]+)\s*$")


def credentials(username: str, password: str, *, provider: str = PROVIDER) -> dict[str, str]:
    """The Authorization header for Metron's Basic auth; refused before any request when a part is missing."""
    username = (username or "").strip()
    if not username or not password:
        raise BadCredentials(provider, "no Metron user name or password is set: enter both on the Comics card")
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return {"Authorization": f"Basic {token}"}


class MetronClient:
    """Calls Metron through one `HttpClient` (which carries the credentials) and returns Candidates."""

    def __init__(self, http: HttpClient) -> None:
        self.http = http
        self.provider = http.provider

    def __repr__(self) -> str:
        return f"<MetronClient {self.http.base_url}>"

    @classmethod
    def from_config(cls, config: ProviderConfig, *, throttle: Throttle | None = None) -> MetronClient:
        """A client for the saved Comics card: `metron_username` setting + `metron_password` secret."""
        headers = credentials(str(config.settings.get("metron_username") or ""), config.secret("metron_password"),
                              provider=config.provider)
        headers["User-Agent"] = USER_AGENT
        return cls(HttpClient.from_config(config, DEFAULT_BASE_URL, headers=headers, throttle=throttle))

    def check(self) -> None:
        """One cheap authenticated call (an issue list that matches nothing)."""
        self._list({"upc": "000000000000"}, what="the issue list")

    def issues(self, *, series_name: str | None = None, number: str | None = None, cover_year: int | None = None,
               publisher_name: str | None = None, upc: str | None = None, page: int = 1) -> list[Candidate]:
        """One page of /api/issue/ with Metron's own filters: light candidates, Metron's order."""
        params: dict[str, Any] = {"series_name": series_name, "number": number, "cover_year": cover_year,
                                  "publisher_name": publisher_name, "upc": upc}
        params = {key: value for key, value in params.items() if value not in (None, "")}
        if not params:
            return []  # an unfiltered list is the whole database
        if page > 1:
            params["page"] = page
        return [normalise_issue_list_item(item) for item in self._list(params, what="issues")]

    def issue(self, issue_id: int | str) -> Candidate:
        """An issue in full: credits, genres, barcode, cover."""
        number = _metron_id(issue_id)
        return normalise_issue(self._get(f"/api/issue/{number}/", None, what=f"issue {number}"))

    def by_barcode(self, value: str) -> list[Candidate]:
        """Issues whose UPC is this barcode. Metron stores the printed UPC (often 17 digits with its add-on) and
        matches it exactly, so a 12/13-digit code is asked as the UPC-A; a 17-digit one as it is."""
        digits = re.sub(r"\D", "", value or "")
        if len(digits) == 17:
            upc = digits
        else:
            try:
                upc = normalise_ean(digits)
            except IdentifierError:
                return []
            upc = upc[1:] if upc.startswith("0") else upc
        found = self.issues(upc=upc)
        return [self.issue(c.provider_id) for c in found[:DETAILS_PER_BARCODE]]

    # -- internals ---------------------------------------------------------------------------------------------

    def _list(self, params: dict[str, Any], *, what: str) -> list[dict[str, Any]]:
        body = self._get("/api/issue/", params, what=what)
        results = body.get("results")
        if not isinstance(results, list) or not isinstance(body.get("count"), int):
            raise BadResponse(self.provider, "GET /api/issue/: the answer is not a page of results")
        return [item for item in results if isinstance(item, dict)]

    def _get(self, path: str, params: dict[str, Any] | None, *, what: str) -> dict[str, Any]:
        try:
            body = self.http.get_json(path, params=params)
        except NotFoundAt as exc:
            failure: ProviderError = NotFoundAt(self.provider, f"Metron has no {what} ({exc.message})")
        except BadCredentials as exc:
            failure = BadCredentials(self.provider, "Metron refused the user name or password; check them on the "
                                                    f"Comics card ({exc.message})")
        else:
            if not isinstance(body, dict):
                raise BadResponse(self.provider, f"GET {path}: the answer is not a JSON object")
            return body
        raise failure


def _metron_id(value: int | str) -> int:
    return path_id(value, "a Metron id")


# --- Metron JSON → Candidate: the one place ----------------------------------------------------------------------


def normalise_issue(data: dict[str, Any]) -> Candidate:
    """An issue from /api/issue/{id}/."""
    issue_id = _id_of(data)
    series = as_dict(data.get("series"))
    series_name = clean_text(series.get("name"))
    number = clean_text(data.get("number"))
    title = clean_text(data.get("title")) or _issue_title(series_name, number)
    if title is None:
        raise BadResponse(PROVIDER, f"issue {issue_id} has neither a title nor a series")
    people, extra = _credits(data.get("credits"))
    stories = [name for name in (clean_text(n) for n in as_list(data.get("name"))) if name]
    if stories:
        extra["story_title"] = "; ".join(stories)
    rating = clean_text(as_dict(data.get("rating")).get("name"))
    if rating and rating.lower() != "unknown":
        extra["age_rating"] = rating
    cover_date = parse_date(data.get("cover_date"))
    identifiers, supplement = _identifiers(issue_id, data)
    if supplement:
        extra["upc_supplement"] = supplement
    volume = positive_int(series.get("volume"))
    details = {"series": series_name, "issue": number, "volume": str(volume) if volume else None,
               "publisher": clean_text(as_dict(data.get("publisher")).get("name")),
               "cover_date": cover_date.isoformat() if cover_date else None, "pages": positive_int(data.get("page"))}
    return Candidate(
        provider=PROVIDER, provider_id=str(issue_id), media_type="comic_book", title=title,
        year=cover_date.year if cover_date else None,
        release_date=parse_date(data.get("store_date")) or cover_date,
        overview=clean_text(data.get("desc")),
        genres=list(dict.fromkeys(n for n in (clean_text(as_dict(g).get("name")) for g in as_list(series.get("genres")))
                                  if n)),
        people=people, identifiers=identifiers, cover_url=_image(data.get("image")),
        details={key: value for key, value in details.items() if value not in (None, "")}, extra=extra,
    )


def normalise_issue_list_item(data: dict[str, Any]) -> Candidate:
    """One entry of /api/issue/ (id, series name/volume/year_began, number, cover date, image): a light candidate."""
    issue_id = _id_of(data)
    series = as_dict(data.get("series"))
    series_name = clean_text(series.get("name"))
    number = clean_text(data.get("number"))
    title = _issue_title(series_name, number) or clean_text(data.get("issue"))
    if title is None:
        raise BadResponse(PROVIDER, f"issue {issue_id} has no series and no name")
    cover_date = parse_date(data.get("cover_date"))
    volume = positive_int(series.get("volume"))
    details = {"series": series_name, "issue": number, "volume": str(volume) if volume else None,
               "cover_date": cover_date.isoformat() if cover_date else None}
    return Candidate(
        provider=PROVIDER, provider_id=str(issue_id), media_type="comic_book", title=title,
        year=cover_date.year if cover_date else None,
        release_date=parse_date(data.get("store_date")) or cover_date,
        identifiers={"metron_id": str(issue_id)}, cover_url=_image(data.get("image")),
        details={key: value for key, value in details.items() if value},
    )


def _issue_title(series: str | None, number: str | None) -> str | None:
    if series is None:
        return None
    return f"{series} #{number}" if number else series


def _credits(value: Any) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(people with our roles, extra metadata for cover artists and letterers), in Metron's order, each once."""
    people: list[tuple[str, str]] = []
    extra: dict[str, list[str]] = {}
    for credit in as_list(value):
        name = clean_text(as_dict(credit).get("creator"))
        if name is None:
            continue
        for role in as_list(as_dict(credit).get("role")):
            role_name = (clean_text(as_dict(role).get("name")) or "").lower()
            if role_name in _ROLE_MAP:
                people.append((_ROLE_MAP[role_name], name))
            elif role_name in _EXTRA_ROLES:
                extra.setdefault(_EXTRA_ROLES[role_name], []).append(name)
    return (list(dict.fromkeys(people)),
            {key: ", ".join(dict.fromkeys(names)) for key, names in extra.items()})


def _identifiers(issue_id: int, data: dict[str, Any]) -> tuple[dict[str, str], str | None]:
    """Our identifiers (EAN-13 from the UPC's first 12 digits, ISBN-13, Metron/ComicVine/GCD ids) and the UPC's
    5-digit add-on (issue, cover and printing), which the catalog keeps as metadata."""
    ids = {"metron_id": str(issue_id)}
    ean, supplement = barcode_parts(data.get("upc"))
    if ean:
        ids["ean13"] = ean
    isbn = _isbn13(data.get("isbn"))
    if isbn:
        ids["isbn13"] = isbn
    for key, name in (("cv_id", "comicvine_id"), ("gcd_id", "gcd_id")):
        if (number := positive_int(data.get(key))) is not None:
            ids[name] = str(number)
    return ids, supplement


def barcode_parts(value: Any) -> tuple[str | None, str | None]:
    """A comic's printed barcode as (EAN-13, add-on): US comics print a UPC-A plus a 5-digit add-on (17 digits);
    the catalog stores the UPC-A as EAN-13. A code with a bad check digit gives (None, None)."""
    digits = re.sub(r"\D", "", value) if isinstance(value, str) else ""
    if len(digits) in (17, 18):  # UPC-A or EAN-13 + the 5-digit add-on
        digits, supplement = digits[:-5], digits[-5:]
    else:
        supplement = None
    try:
        return normalise_ean(digits), supplement
    except IdentifierError:
        return None, None


def _isbn13(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return normalise_isbn(value)
    except IdentifierError:
        return None


def _image(value: Any) -> str | None:
    url = clean_text(value)
    return url if url and url.startswith(("https://", "http://")) else None


def _id_of(data: Any) -> int:
    if not isinstance(data, dict):
        raise BadResponse(PROVIDER, "an issue is not a JSON object")
    value = data.get("id")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadResponse(PROVIDER, "an issue without a valid id")
    return value






def split_issue_title(query: SearchQuery) -> tuple[str, str | None]:
    """(series name, issue number) from a query: its own fields, else a title written "Series #12"."""
    series = " ".join((query.series or "").split())
    number = (query.number or "").strip().lstrip("#") or None
    if series:
        return series, number
    title = " ".join((query.title or "").split())
    match = _NUMBER_IN_TITLE.match(title)
    if match and number is None:
        return match["series"], match["number"]
    return title, number


# --- as a metadata provider (collectz.providers.base) ----------------------------------------------------------


class MetronProvider(ClientProvider):
    """Metron as the enrichment service and the item form use it: comic book issues."""

    key = PROVIDER
    media_types = ("comic_book",)

    def by_identifier(self, kind: str, value: str) -> list[Candidate]:
        """By barcode (EAN-13/UPC-A, or the 17-digit UPC with its add-on) or Metron id; others: []."""
        if kind == EAN13:
            return self.client.by_barcode(value)
        return self.by_own_id(self.client.issue, value) if kind == "metron_id" else []

    def search(self, query: SearchQuery, *, limit: int = 10) -> list[Candidate]:
        """Issues of a series (by name, all words), narrowed by number, cover year and publisher."""
        series, number = split_issue_title(query)
        if not series:
            return []
        found = self.client.issues(series_name=series, number=number, cover_year=query.year,
                                   publisher_name=query.publisher)
        return found[:limit]

    def details(self, candidate: Candidate) -> Candidate:
        if candidate.provider != self.key:
            return candidate
        return self.client.issue(candidate.provider_id)


def build(config: ProviderConfig, *, throttle: Throttle | None = None) -> MetronProvider:
    """The provider for the saved Comics card (its base URL, when set, is the address: e.g. a local fake)."""
    return MetronProvider(MetronClient.from_config(config, throttle=throttle))


__all__ = ["DEFAULT_BASE_URL", "PROVIDER", "MetronClient", "MetronProvider", "barcode_parts", "build",
           "credentials", "normalise_issue", "normalise_issue_list_item", "split_issue_title"]
