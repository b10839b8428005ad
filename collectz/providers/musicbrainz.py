"""MusicBrainz (Web Service v2, JSON): releases by barcode or by title and artist, answered as our `Candidate`s.

MusicBrainz needs no key, but it asks every application for a meaningful User-Agent with a way to reach its
operator ("Application/version ( contact )"): a missing or generic one is refused with 403, so the Music card's
`contact` setting goes into ours. Its rate limit (one request per second per IP) is answered with 503 and an
`{"error": "Your requests are exceeding the allowable rate limit…"}` body: that is RateLimited, not Unavailable.
Covers come from the Cover Art Archive, which MusicBrainz links from each release (`cover-art-archive.front`).

`normalise_release` is the one place a MusicBrainz release document (a lookup or a search result) becomes a
Candidate. HTTP policy belongs to `providers.http`; this module adds MusicBrainz's paths, query syntax and wording.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import requests

from collectz.providers.base import EAN13, ClientProvider, SearchQuery
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
from collectz.providers.records import Candidate, as_dict, as_list, clean_text, parse_date, positive_int
from collectz.services.identifiers import IdentifierError, normalise_asin, normalise_ean

if TYPE_CHECKING:
    from collectz.providers.throttle import Throttle

PROVIDER = "musicbrainz"
DEFAULT_BASE_URL = "https://musicbrainz.org"
COVER_ART_BASE_URL = "https://coverartarchive.org"
COVER_SIZE = "front-500"  # the Cover Art Archive's 500 px thumbnail of the front image
APPLICATION = "collectZ/0.1"
HOMEPAGE = "https://github.com/collectz"
LOOKUP_INC = ("artist-credits", "labels", "recordings", "release-groups", "genres")
MAX_LIMIT = 100  # MusicBrainz's search answers 1–100 results per request
BARCODE_DETAILS = 3  # full lookups made for one barcode (each one is another second of MusicBrainz's rate limit)
RELEASE_ID = "musicbrainz_release_id"
RELEASE_GROUP_ID = "musicbrainz_release_group_id"
RATE_LIMIT_WAIT = 1.0  # seconds, when a rate-limit answer has no Retry-After: MusicBrainz allows 1 request/s

_MBID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CONTACT_UNSAFE = re.compile(r"[^A-Za-z0-9@._+:/?=&%~#,-]+")
_RATE_LIMIT_WORDS = "exceeding the allowable rate limit"


def user_agent(contact: Any = None) -> str:
    """Our User-Agent in MusicBrainz's documented form, with the admin's contact (an email address or a URL).

    The contact is free text from a form and ends up in a header: anything but the characters of an address or a
    URL is dropped, so it can neither break the header nor the "( … )" MusicBrainz reads it from.
    """
    text = _CONTACT_UNSAFE.sub(" ", contact if isinstance(contact, str) else "").split()
    cleaned = " ".join(text)[:200]
    return f"{APPLICATION} (+{HOMEPAGE}; {cleaned})" if cleaned else f"{APPLICATION} (+{HOMEPAGE})"


def barcode_query(ean13: str) -> str:
    """A Lucene query for a barcode as MusicBrainz stores it: printed UPC-A (12 digits) or EAN-13 as entered."""
    forms = [ean13] + ([ean13[1:]] if ean13.startswith("0") else [])
    return " OR ".join(f"barcode:{form}" for form in forms)


def release_query(title: str, artists: Iterable[str] = ()) -> str:
    """A Lucene query for a release title, narrowed to releases credited to each artist given."""
    clauses = [f"release:{_phrase(title)}"] + [f"artist:{_phrase(name)}" for name in artists if name.strip()]
    return " AND ".join(clauses)


def _phrase(text: str) -> str:
    """A Lucene phrase: inside quotes only a quote and a backslash need escaping."""
    text = " ".join(text.split())
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class MusicBrainzHttp(HttpClient):
    """HttpClient that knows MusicBrainz's rate-limit answer: a 503 whose body says the rate limit was exceeded."""

    def error_for(self, response: requests.Response, where: str) -> ProviderError | None:
        if response.status_code == 503 and _RATE_LIMIT_WORDS in response.text[:2000]:
            retry_after = parse_retry_after(response.headers.get("Retry-After")) or RATE_LIMIT_WAIT
            return RateLimited(self.provider, f"{where}: MusicBrainz's rate limit was exceeded; retry in "
                                              f"{retry_after:.0f} s", retry_after=retry_after)
        return None


class MusicBrainzClient:
    """Calls MusicBrainz's web service through one `MusicBrainzHttp` (which carries the User-Agent)."""

    def __init__(self, http: HttpClient, *, cover_art_base_url: str = COVER_ART_BASE_URL) -> None:
        self.http = http
        self.provider = http.provider
        self.cover_art_base_url = cover_art_base_url.rstrip("/")

    def __repr__(self) -> str:
        return f"<MusicBrainzClient {self.http.base_url}>"

    @classmethod
    def from_config(cls, config: ProviderConfig, *, base_url: str = DEFAULT_BASE_URL,
                    cover_art_base_url: str = COVER_ART_BASE_URL,
                    throttle: Throttle | None = None) -> MusicBrainzClient:
        """A client for the saved Music card: its `contact` setting in the User-Agent, its base URL if set.

        The card configures two providers, so errors are named after this one ("musicbrainz: …"), not the card.
        """
        config = dataclasses.replace(config, provider=PROVIDER)
        headers = {"User-Agent": user_agent(config.settings.get("contact"))}
        http = MusicBrainzHttp.from_config(config, base_url, headers=headers, throttle=throttle)
        return cls(http, cover_art_base_url=cover_art_base_url)

    # -- calls -----------------------------------------------------------------------------------------------------

    def check(self) -> None:
        """One cheap search, proving the service answers us (MusicBrainz has no key; it may refuse our agent)."""
        self._search("barcode:0", limit=1)

    def search_barcode(self, barcode: str, *, limit: int = 10) -> list[Candidate]:
        """Releases carrying a UPC/EAN barcode (light candidates; [] for a barcode that is not valid)."""
        try:
            ean13 = normalise_ean(barcode)
        except IdentifierError:
            return []
        found = self._search(barcode_query(ean13), limit=limit)
        return [c for c in found if c.identifiers.get("ean13") == ean13]

    def search_releases(self, title: str, *, artists: Iterable[str] = (), limit: int = 10) -> list[Candidate]:
        """Releases whose title matches, credited to `artists` when given; MusicBrainz's ranking (best first)."""
        if not " ".join(str(title or "").split()):
            return []
        return self._search(release_query(str(title), list(artists)), limit=limit)

    def release(self, mbid: str) -> Candidate:
        """A release in full: artists, label, tracks and running time, release group, genres, cover."""
        release_id = _mbid(mbid)
        params = {"inc": " ".join(LOOKUP_INC), "fmt": "json"}  # sent as inc=artist-credits+labels+…
        data = self._get(f"/ws/2/release/{release_id}", params, what=f"release {release_id}")
        return normalise_release(data, self.cover_art_base_url)

    # -- internals ---------------------------------------------------------------------------------------------

    def _search(self, query: str, *, limit: int) -> list[Candidate]:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"MusicBrainz answers between 1 and {MAX_LIMIT} results per search")
        data = self._get("/ws/2/release", {"query": query, "limit": limit, "offset": 0, "fmt": "json"},
                         what="search results for releases")
        releases = data.get("releases", [])
        if not isinstance(releases, list):
            raise BadResponse(self.provider, "GET /ws/2/release: the answer's releases is not a list")
        return [normalise_release(item, self.cover_art_base_url) for item in releases if isinstance(item, dict)]

    def _get(self, path: str, params: dict[str, Any], *, what: str) -> dict[str, Any]:
        try:
            body = self.http.get_json(path, params=params)
        except NotFoundAt as exc:
            failure: ProviderError = NotFoundAt(self.provider, f"MusicBrainz has no {what} ({exc.message})")
        except BadCredentials as exc:
            failure = BadCredentials(self.provider, "MusicBrainz refused our User-Agent; set a contact address on "
                                                    f"the Music integration ({exc.message})")
        else:
            if not isinstance(body, dict):
                raise BadResponse(self.provider, f"GET {path}: the answer is not a JSON object")
            if "error" in body and "id" not in body and "releases" not in body:
                said = (clean_text(body.get("error")) or "no message")[:200]
                raise BadResponse(self.provider, f"GET {path}: MusicBrainz says {said!r}")
            return body
        raise failure


def _mbid(value: Any) -> str:
    """A MusicBrainz id (a lower-case UUID): it goes into a URL path, so nothing else may get through."""
    text = str(value or "").strip().lower()
    if not _MBID.fullmatch(text):
        raise ValueError(f"{value!r} is not a MusicBrainz id")
    return text


# --- MusicBrainz JSON → Candidate: the one place ----------------------------------------------------------------


def normalise_release(data: dict[str, Any], cover_art_base_url: str = COVER_ART_BASE_URL) -> Candidate:
    """A release from /ws/2/release/{mbid} (with LOOKUP_INC) or one entry of a release search's `releases`."""
    if not isinstance(data, dict):
        raise BadResponse(PROVIDER, "a release is not a JSON object")
    release_id = data.get("id")
    if not isinstance(release_id, str) or not _MBID.fullmatch(release_id):
        raise BadResponse(PROVIDER, "a release without a valid id")
    title = clean_text(data.get("title"))
    if title is None:
        raise BadResponse(PROVIDER, f"release {release_id} has no title")
    group = as_dict(data.get("release-group"))
    when = clean_text(data.get("date"))
    label, catalog_number = _label(data)
    media = [m for m in as_list(data.get("media")) if isinstance(m, dict)]
    formats = list(dict.fromkeys(f for m in media if (f := clean_text(m.get("format")))))
    extra = {"catalog_number": catalog_number, "country": clean_text(data.get("country")),
             "media_format": ", ".join(formats) or None, "release_type": clean_text(group.get("primary-type"))}
    details = {"label": label, "track_count": _track_count(data, media)}
    return Candidate(
        provider=PROVIDER, provider_id=release_id, media_type="audio", title=title,
        year=_year(when), release_date=parse_date(when), runtime=_runtime(media),
        genres=_genres(data, group), people=[("artist", name) for name in _artists(data)],
        identifiers=_identifiers(release_id, data, group), cover_url=_cover(release_id, data, cover_art_base_url),
        details={key: value for key, value in details.items() if value is not None},
        extra={key: value for key, value in extra.items() if value},
    )






def _year(when: str | None) -> int | None:
    """The year of a MusicBrainz date, which may be partial: "1991", "1991-09" or "1991-09-24"."""
    return int(when[:4]) if when and re.match(r"\d{4}(-|$)", when) and int(when[:4]) > 0 else None


def _artists(data: dict[str, Any]) -> list[str]:
    """The credited artists, each once, as the release credits them (the credited name, else the artist's)."""
    names = []
    for credit in as_list(data.get("artist-credit")):
        if isinstance(credit, dict):
            name = clean_text(credit.get("name")) or clean_text(as_dict(credit.get("artist")).get("name"))
            if name:
                names.append(name)
    return list(dict.fromkeys(names))


def _label(data: dict[str, Any]) -> tuple[str | None, str | None]:
    """The first label (and its catalogue number); "[no label]" is MusicBrainz's name for self-released."""
    for info in as_list(data.get("label-info")):
        if not isinstance(info, dict):
            continue
        name = clean_text(as_dict(info.get("label")).get("name"))
        if name and name.lower() != "[no label]":
            return name, clean_text(info.get("catalog-number"))
    return None, None


def _track_count(data: dict[str, Any], media: list[dict[str, Any]]) -> int | None:
    counts = [positive_int(m.get("track-count")) for m in media]
    total = sum(c for c in counts if c)
    return total or positive_int(data.get("track-count"))


def _runtime(media: list[dict[str, Any]]) -> int | None:
    """The running time in minutes: the tracks' lengths (milliseconds) when MusicBrainz knows them all."""
    lengths = [track.get("length") for m in media for track in as_list(m.get("tracks")) if isinstance(track, dict)]
    if not lengths or not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in lengths):
        return None
    return round(sum(lengths) / 60000) or None


def _genres(data: dict[str, Any], group: dict[str, Any]) -> list[str]:
    """The release's genres, then its release group's, most voted first; capitalised ("alternative rock" →
    "Alternative Rock") like the rest of the catalog's genres."""
    found = []
    for source in (data, group):
        entries = [g for g in as_list(source.get("genres")) if isinstance(g, dict) and clean_text(g.get("name"))]
        entries.sort(key=lambda g: -(g["count"] if isinstance(g.get("count"), int) else 0))
        found += [_capitalised(clean_text(g["name"]) or "") for g in entries]
    return list(dict.fromkeys(found))


def _capitalised(name: str) -> str:
    return " ".join("-".join(part[:1].upper() + part[1:] for part in word.split("-")) for word in name.split())


def _identifiers(release_id: str, data: dict[str, Any], group: dict[str, Any]) -> dict[str, str]:
    ids = {RELEASE_ID: release_id}
    group_id = group.get("id")
    if isinstance(group_id, str) and _MBID.fullmatch(group_id):
        ids[RELEASE_GROUP_ID] = group_id
    for key, normalise in (("ean13", normalise_ean), ("asin", normalise_asin)):
        raw = clean_text(data.get("barcode" if key == "ean13" else "asin"))
        if raw:
            try:
                ids[key] = normalise(raw)
            except IdentifierError:
                continue  # MusicBrainz keeps barcodes as printed; one that is not a UPC/EAN is left out
    return ids


def _cover(release_id: str, data: dict[str, Any], cover_art_base_url: str) -> str | None:
    """The Cover Art Archive's front image, when the release says it has one (search results do not say)."""
    if as_dict(data.get("cover-art-archive")).get("front") is not True:
        return None
    return f"{cover_art_base_url.rstrip('/')}/release/{release_id}/{COVER_SIZE}"


__all__ = ["DEFAULT_BASE_URL", "PROVIDER", "MusicBrainzClient", "MusicBrainzProvider", "barcode_query", "build",
           "normalise_release", "release_query", "user_agent"]


# --- as a metadata provider (collectz.providers.base) ----------------------------------------------------------


class MusicBrainzProvider(ClientProvider):
    """MusicBrainz as the enrichment service and the item form use it: music releases."""

    key = PROVIDER
    media_types = ("audio",)

    def by_identifier(self, kind: str, value: str) -> list[Candidate]:
        """By barcode (EAN-13 / UPC-A) or MusicBrainz release id, in full; other identifiers: []."""
        if kind == RELEASE_ID:
            return self.by_own_id(self.client.release, value)
        if kind != EAN13:
            return []
        found = self.client.search_barcode(value, limit=10)
        return [self.details(c) for c in found[:BARCODE_DETAILS]]

    def search(self, query: SearchQuery, *, limit: int = 10) -> list[Candidate]:
        """By title and artists; a year ranks the releases of that year first (MusicBrainz dates are often
        partial or missing, so it does not exclude the others)."""
        if query.media_type not in (None, "audio"):
            return []
        limit = max(1, min(limit, MAX_LIMIT))
        found = self.client.search_releases(query.title, artists=query.people, limit=limit)
        if query.year is not None:
            found.sort(key=lambda c: c.year != query.year)
        return found[:limit]

    def details(self, candidate: Candidate) -> Candidate:
        if candidate.provider != self.key:
            return candidate
        return self.client.release(candidate.provider_id)


def build(config: ProviderConfig, *, throttle: Throttle | None = None,
          cover_art_base_url: str = COVER_ART_BASE_URL) -> MusicBrainzProvider:
    """The provider for the saved Music card (its base URL, when set, is the address: e.g. a local fake in tests)."""
    return MusicBrainzProvider(MusicBrainzClient.from_config(config, cover_art_base_url=cover_art_base_url,
                                                             throttle=throttle))
