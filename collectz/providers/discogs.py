"""Discogs (API v2.0): releases by barcode or by title and artist, answered as our `Candidate`s.

Discogs wants every application to send a User-Agent that identifies it, and a search (and image URLs) needs
authentication: the Music card's `discogs_token` (a personal access token) goes in `Authorization: Discogs token=…`,
never in a query string. Its rate limit is 60 authenticated requests a minute in a moving window; over it, 429 with
`{"message": "You are making requests too quickly."}`.

Search results and release documents are different shapes, so there are two normalisers: `normalise_search_result`
(light: "Artist - Title", flat lists of labels, formats and barcodes) and `normalise_release` (everything: credits,
tracklist, identifiers, images).
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING, Any

from collectz.providers.base import EAN13, ClientProvider, SearchQuery
from collectz.providers.config import ProviderConfig
from collectz.providers.http import (
    BadCredentials,
    BadResponse,
    HttpClient,
    NotFoundAt,
    ProviderError,
    RateLimited,
)
from collectz.providers.records import Candidate, as_list, clean_text, parse_date, path_id, positive_int
from collectz.services.identifiers import IdentifierError, normalise_ean

if TYPE_CHECKING:
    from collectz.providers.throttle import Throttle

PROVIDER = "discogs"
DEFAULT_BASE_URL = "https://api.discogs.com"
USER_AGENT = "collectZ/0.1 (+https://github.com/collectz)"
MAX_PER_PAGE = 100  # Discogs pages hold 50 results by default, 100 at most
BARCODE_DETAILS = 3  # full lookups made for one barcode
RATE_WINDOW = 60.0  # seconds: Discogs counts requests in a moving minute and sends no Retry-After of its own
RELEASE_ID = "discogs_release_id"
MASTER_ID = "discogs_master_id"

_NUMBERED = re.compile(r"\s+\(\d+\)$")  # Discogs tells same-named artists and labels apart as "Nirvana (2)"
_DURATION = re.compile(r"(?:(\d+):)?(\d{1,3}):(\d{2})")
_PRODUCER_ROLES = frozenset({"producer", "co-producer", "executive-producer"})
_WRITER_ROLES = frozenset({"written-by", "songwriter", "lyrics by", "music by", "words by", "composed by"})


def credentials(token: str, *, provider: str = PROVIDER) -> dict[str, str]:
    """The headers that authenticate with Discogs; a missing or impossible token is refused before any request."""
    token = (token or "").strip()
    if not token:
        raise BadCredentials(provider, "no personal access token is set: generate one in Discogs → Settings → "
                                       "Developers and paste it on the Music integration")
    if not token.isascii() or not token.isprintable() or any(ch.isspace() for ch in token):
        raise BadCredentials(provider, "the personal access token contains spaces or characters a Discogs token "
                                       "never has: copy it again from Discogs → Settings → Developers")
    return {"Authorization": f"Discogs token={token}", "User-Agent": USER_AGENT}


def printed_barcode(ean13: str) -> str:
    """The barcode as Discogs users type it from the sleeve: a UPC-A keeps its 12 digits, an EAN its 13."""
    return ean13[1:] if ean13.startswith("0") else ean13


class DiscogsClient:
    """Calls Discogs through one `HttpClient` (which carries the token and the User-Agent)."""

    def __init__(self, http: HttpClient) -> None:
        self.http = http
        self.provider = http.provider

    def __repr__(self) -> str:
        return f"<DiscogsClient {self.http.base_url}>"

    @classmethod
    def from_config(cls, config: ProviderConfig, *, base_url: str = DEFAULT_BASE_URL,
                    throttle: Throttle | None = None) -> DiscogsClient:
        """A client for the saved Music card: its `discogs_token` secret, its base URL if set.

        The card configures two providers, so errors are named after this one ("discogs: …"), not the card.
        """
        config = dataclasses.replace(config, provider=PROVIDER)
        headers = credentials(config.secret("discogs_token"), provider=config.provider)
        return cls(HttpClient.from_config(config, base_url, headers=headers, throttle=throttle))

    # -- calls -----------------------------------------------------------------------------------------------------

    def check(self) -> None:
        """Prove the token works (GET /oauth/identity: who the token belongs to)."""
        body = self._get("/oauth/identity", {}, what="identity")
        if not clean_text(body.get("username")):
            raise BadCredentials(self.provider, "GET /oauth/identity: Discogs did not say whose token this is")

    def search_barcode(self, barcode: str, *, per_page: int = 10) -> list[Candidate]:
        """Releases carrying a UPC/EAN barcode (light candidates; [] for a barcode that is not valid)."""
        try:
            ean13 = normalise_ean(barcode)
        except IdentifierError:
            return []
        found = self._search({"barcode": printed_barcode(ean13)}, per_page)
        return [c for c in found if c.identifiers.get("ean13") == ean13]  # Discogs also matches parts of numbers

    def search_releases(self, title: str, *, artist: str | None = None, year: int | None = None,
                        per_page: int = 10) -> list[Candidate]:
        """Releases whose title matches, by `artist` and from `year` when given; Discogs's relevance order."""
        title = " ".join(str(title or "").split())
        if not title:
            return []
        params: dict[str, Any] = {"release_title": title}
        if artist and artist.strip():
            params["artist"] = " ".join(artist.split())
        if year:
            params["year"] = year
        return self._search(params, per_page)

    def release(self, release_id: int | str) -> Candidate:
        """A release in full: artists and producers, label, formats, tracklist, barcode, genres and styles, image."""
        number = _release_id(release_id)
        return normalise_release(self._get(f"/releases/{number}", {}, what=f"release {number}"))

    # -- internals ---------------------------------------------------------------------------------------------

    def _search(self, params: dict[str, Any], per_page: int) -> list[Candidate]:
        if isinstance(per_page, bool) or not isinstance(per_page, int) or not 1 <= per_page <= MAX_PER_PAGE:
            raise ValueError(f"a Discogs results page holds between 1 and {MAX_PER_PAGE} results")
        data = self._get("/database/search", {**params, "type": "release", "per_page": per_page, "page": 1},
                         what="search results")
        results = data.get("results", [])
        if not isinstance(results, list) or not isinstance(data.get("pagination", {}), dict):
            raise BadResponse(self.provider, "GET /database/search: the answer is not a page of results")
        return [normalise_search_result(item) for item in results
                if isinstance(item, dict) and item.get("type", "release") == "release"]

    def _get(self, path: str, params: dict[str, Any], *, what: str) -> dict[str, Any]:
        """GET a Discogs document; errors say what was asked for and never carry the token (it is a header)."""
        try:
            body = self.http.get_json(path, params=params)
        except NotFoundAt as exc:
            failure: ProviderError = NotFoundAt(self.provider, f"Discogs has no {what} ({exc.message})")
        except BadCredentials as exc:
            failure = BadCredentials(self.provider, "Discogs refused the personal access token; check it on the "
                                                    f"Music integration ({exc.message})")
        except RateLimited as exc:
            wait = exc.retry_after if exc.retry_after is not None else RATE_WINDOW
            failure = RateLimited(self.provider, f"{exc.message} (Discogs allows 60 requests a minute)",
                                  retry_after=wait)
        else:
            if not isinstance(body, dict):
                raise BadResponse(self.provider, f"GET {path}: the answer is not a JSON object")
            return body
        raise failure


def _release_id(value: int | str) -> int:
    return path_id(value, "a Discogs release id")


# --- Discogs JSON → Candidate: one normaliser per document ------------------------------------------------------


def normalise_search_result(data: dict[str, Any]) -> Candidate:
    """One entry of /database/search's `results` (type "release"): a light candidate."""
    release_id = _id_of(data)
    artist, title = _split_title(clean_text(data.get("title")))
    if title is None:
        raise BadResponse(PROVIDER, f"search result {release_id} has no title")
    labels = [_unnumbered(n) for n in _texts(data.get("label"))]
    barcodes = _texts(data.get("barcode"))
    extra = {"catalog_number": clean_text(data.get("catno")), "country": clean_text(data.get("country")),
             "media_format": ", ".join(dict.fromkeys(_texts(data.get("format"))[:1])) or None}
    return Candidate(
        provider=PROVIDER, provider_id=str(release_id), media_type="audio", title=title,
        year=_year(data.get("year")), genres=list(dict.fromkeys(_texts(data.get("genre")) + _texts(data.get("style")))),
        people=[("artist", artist)] if artist else [],
        identifiers=_identifiers(release_id, data.get("master_id"), barcodes),
        cover_url=_image_url(data.get("cover_image")),
        details={"label": labels[0]} if labels else {},
        extra={key: value for key, value in extra.items() if value},
    )


def normalise_release(data: dict[str, Any]) -> Candidate:
    """A release from /releases/{id}."""
    release_id = _id_of(data)
    title = clean_text(data.get("title"))
    if title is None:
        raise BadResponse(PROVIDER, f"release {release_id} has no title")
    tracks = [t for t in as_list(data.get("tracklist")) if isinstance(t, dict) and t.get("type_", "track") == "track"]
    labels = [label for label in as_list(data.get("labels")) if isinstance(label, dict) and _name(label)]
    formats = [name for f in as_list(data.get("formats"))
               if isinstance(f, dict) and (name := clean_text(f.get("name")))]
    barcodes = [clean_text(i.get("value")) or "" for i in as_list(data.get("identifiers"))
                if isinstance(i, dict) and str(i.get("type", "")).lower() == "barcode"]
    released = clean_text(data.get("released"))
    extra = {"catalog_number": clean_text(labels[0].get("catno")) if labels else None,
             "country": clean_text(data.get("country")), "media_format": ", ".join(dict.fromkeys(formats)) or None}
    details = {"label": _name(labels[0]) if labels else None, "track_count": len(tracks) or None}
    return Candidate(
        provider=PROVIDER, provider_id=str(release_id), media_type="audio", title=title,
        year=_year(data.get("year")) or _year(released), release_date=parse_date(released),
        runtime=_runtime(tracks), genres=list(dict.fromkeys(_texts(data.get("genres")) + _texts(data.get("styles")))),
        people=_people(data), identifiers=_identifiers(release_id, data.get("master_id"), barcodes),
        cover_url=_cover(data), details={key: value for key, value in details.items() if value is not None},
        extra={key: value for key, value in extra.items() if value},
    )


def _id_of(data: Any) -> int:
    if not isinstance(data, dict):
        raise BadResponse(PROVIDER, "a release is not a JSON object")
    value = data.get("id")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadResponse(PROVIDER, "a release without a valid id")
    return value




def _texts(value: Any) -> list[str]:
    return [text for item in as_list(value) if (text := clean_text(item))]


def _unnumbered(name: str) -> str:
    return _NUMBERED.sub("", name)


def _name(entry: dict[str, Any]) -> str | None:
    name = clean_text(entry.get("name"))
    return _unnumbered(name) if name else None


def _split_title(title: str | None) -> tuple[str | None, str | None]:
    """A search result's "Artist - Title" as (artist, title); Discogs's "Various" compilations keep no artist."""
    if title is None or " - " not in title:
        return None, title
    artist, _sep, rest = title.partition(" - ")
    artist = _unnumbered(artist.strip())
    return (None if artist.lower() == "various" else artist or None), clean_text(rest)


def _year(value: Any) -> int | None:
    """Discogs's year: an int on a release, text on a search result, 0 or "" when unknown; or a `released` date."""
    text = str(value).strip() if isinstance(value, int | str) and not isinstance(value, bool) else ""
    return int(text[:4]) if re.match(r"\d{4}(-|$)", text) and int(text[:4]) > 0 else None


def _people(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Artists in credit order, then producers and writers credited for the whole release (not for one track)."""
    people = [("artist", name) for a in as_list(data.get("artists")) if isinstance(a, dict) and (name := _name(a))]
    for credit in as_list(data.get("extraartists")):
        if not isinstance(credit, dict) or clean_text(credit.get("tracks")) or not (name := _name(credit)):
            continue
        roles = {role.strip().lower() for role in str(credit.get("role") or "").split(",")}
        if roles & _PRODUCER_ROLES:
            people.append(("producer", name))
        if roles & _WRITER_ROLES:
            people.append(("writer", name))
    return list(dict.fromkeys(people))


def _runtime(tracks: list[dict[str, Any]]) -> int | None:
    """Minutes of music when every track's duration ("3:32", "1:02:05") is known."""
    seconds = 0
    for track in tracks:
        match = _DURATION.fullmatch(str(track.get("duration") or "").strip())
        if not match:
            return None
        seconds += int(match[1] or 0) * 3600 + int(match[2]) * 60 + int(match[3])
    return positive_int(round(seconds / 60)) if tracks else None


def _identifiers(release_id: int, master_id: Any, barcodes: list[str]) -> dict[str, str]:
    ids = {RELEASE_ID: str(release_id)}
    if isinstance(master_id, int) and not isinstance(master_id, bool) and master_id > 0:
        ids[MASTER_ID] = str(master_id)
    for raw in barcodes:  # as printed ("7 20642-44252-4"); search results mix in other numbers, hence "first valid"
        try:
            ids["ean13"] = normalise_ean(raw)
        except IdentifierError:
            continue
        break
    return ids


def _image_url(value: Any) -> str | None:
    """An image URL Discogs gave; its placeholder ("…/spacer.gif") and anything not https is no cover."""
    url = clean_text(value)
    if not url or not url.startswith("https://") or url.endswith("spacer.gif"):
        return None
    return url


def _cover(data: dict[str, Any]) -> str | None:
    images = [i for i in as_list(data.get("images")) if isinstance(i, dict)]
    images.sort(key=lambda image: image.get("type") != "primary")
    return next((url for image in images if (url := _image_url(image.get("uri")))), None)


__all__ = ["DEFAULT_BASE_URL", "PROVIDER", "USER_AGENT", "DiscogsClient", "DiscogsProvider", "build", "credentials",
           "normalise_release", "normalise_search_result", "printed_barcode"]


# --- as a metadata provider (collectz.providers.base) ----------------------------------------------------------


class DiscogsProvider(ClientProvider):
    """Discogs as the enrichment service and the item form use it: music releases."""

    key = PROVIDER
    media_types = ("audio",)

    def by_identifier(self, kind: str, value: str) -> list[Candidate]:
        """By barcode (EAN-13 / UPC-A) or Discogs release id, in full; other identifiers: []."""
        if kind == RELEASE_ID:
            return self.by_own_id(self.client.release, value)
        if kind != EAN13:
            return []
        found = self.client.search_barcode(value, per_page=10)
        return [self.details(c) for c in found[:BARCODE_DETAILS]]

    def search(self, query: SearchQuery, *, limit: int = 10) -> list[Candidate]:
        """By title, narrowed by the first artist named and the year (Discogs filters on both)."""
        if query.media_type not in (None, "audio"):
            return []
        artist = next((name for name in query.people if name.strip()), None)
        per_page = max(1, min(limit, MAX_PER_PAGE))
        return self.client.search_releases(query.title, artist=artist, year=query.year, per_page=per_page)[:limit]

    def details(self, candidate: Candidate) -> Candidate:
        if candidate.provider != self.key:
            return candidate
        return self.client.release(candidate.provider_id)


def build(config: ProviderConfig, *, throttle: Throttle | None = None) -> DiscogsProvider:
    """The provider for the saved Music card (its base URL, when set, is the address: e.g. a local fake in tests)."""
    return DiscogsProvider(DiscogsClient.from_config(config, throttle=throttle))
