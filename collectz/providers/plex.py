"""Plex Media Server client: server identity, library sections, and a section's items as our dataclasses.

Only documented HTTP calls (the Plex API spec), all through `HttpClient`, so the outbound policy, timeouts and error
mapping apply and the token stays in the `X-Plex-Token` header — never in a query string, a message or a log.

Calls per import: one to learn the sections, then one per page of a section's items (`includeGuids=1` adds the
IMDb/TMDB/TVDB ids). A show section costs one more pass, over its seasons (`type=3`, paged): a season's `leafCount`
is the number of its episodes on the server, so owned episodes per season need no request per show or episode.

Type numbers in `type=` are those servers use (movie 1, show 2, season 3, artist 8, album 9, track 10); the spec's
`MediaType` enum says album 6, which no server answers to (its own section-editing examples use 9).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import quote

from collectz.providers.config import ProviderConfig
from collectz.providers.http import BadCredentials, BadResponse, HttpClient, NotFoundAt, UrlRejected
from collectz.services.indexing import resolution_class
from collectz.version import __version__

PROVIDER = "plex"
# Section types we import, and the item type listed for each (an artist section is imported as its albums).
IMPORTED_TYPES: dict[str, int] = {"movie": 1, "show": 2, "artist": 9}
SEASON_TYPE = 3
DEFAULT_PAGE_SIZE = 500
CLIENT_HEADERS = {"Accept": "application/json", "X-Plex-Product": "collectZ", "X-Plex-Version": __version__,
                  "X-Plex-Client-Identifier": "collectz"}

# Guid entries ("imdb://tt0105946") → our id names.
_GUID_SCHEMES = {"imdb": "imdb_id", "tmdb": "tmdb_id", "tvdb": "tvdb_id", "mbid": "mbid"}
# Items matched by a legacy agent carry no Guid entries; the agent's own guid holds the id.
_LEGACY_AGENT = re.compile(r"^com\.plexapp\.agents\.(imdb|themoviedb|thetvdb)://([^?/#]+)")
_LEGACY_IDS = {"imdb": "imdb_id", "themoviedb": "tmdb_id", "thetvdb": "tvdb_id"}
_ID_SHAPES = {"imdb_id": re.compile(r"^tt\d+$"), "tmdb_id": re.compile(r"^\d+$"), "tvdb_id": re.compile(r"^\d+$")}
# Plex's naming convention for editions, in a file or folder name: "Blade Runner (1982) {edition-Final Cut}.mkv".
_EDITION_IN_NAME = re.compile(r"\{edition-([^{}]+)\}", re.IGNORECASE)


@dataclass(frozen=True)
class PlexSection:
    """A library section as the admin selects it (stored as {key, title, type})."""

    key: str
    title: str
    type: str  # "movie" | "show" | "artist"

    def as_dict(self) -> dict[str, str]:
        return {"key": self.key, "title": self.title, "type": self.type}


@dataclass(frozen=True)
class PlexVariant:
    """One version (Plex "Media") of an item: its quality and its file. `file` is the base name only: the server's
    directory layout is none of the catalog's business."""

    media_id: str
    resolution: str | None  # our class (SD, 720p, 1080p, 4K) when known, else what the server said
    video_codec: str | None
    audio_codec: str | None
    container: str | None
    edition: str | None
    file: str | None
    size: int | None  # bytes, all parts together
    duration_ms: int | None
    width: int | None = None
    height: int | None = None
    parts: int = 1


@dataclass
class PlexItem:
    """A movie, show or album of a Plex library, normalised."""

    rating_key: str
    guid: str
    type: str  # "movie" | "show" | "album"
    title: str
    year: int | None = None
    originally_available_at: date | None = None
    original_title: str | None = None
    summary: str | None = None
    studio: str | None = None  # a movie's studio, a show's network, an album's label
    content_rating: str | None = None
    duration_minutes: int | None = None
    rating: float | None = None  # 0–10
    genres: list[str] = field(default_factory=list)
    directors: list[str] = field(default_factory=list)
    writers: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    artist: str | None = None  # an album's artist (its parent)
    ids: dict[str, str] = field(default_factory=dict)  # tmdb_id, imdb_id, tvdb_id, mbid
    thumb: str | None = None  # a path on the server (it needs the token: fetch it through the client)
    edition: str | None = None
    leaf_count: int | None = None  # episodes of a show, tracks of an album, present on the server
    variants: list[PlexVariant] = field(default_factory=list)
    # (season number, episodes owned, episodes in the season if known — Plex does not say, so None)
    seasons: list[tuple[int, int, int | None]] = field(default_factory=list)

    @property
    def is_agent_matched(self) -> bool:
        """True when the guid names the item worldwide (plex:// or a legacy agent), not just on this server."""
        return bool(self.guid) and not self.guid.startswith(("local://", "com.plexapp.agents.none://"))


class PlexClient:
    """Calls one Plex Media Server."""

    def __init__(self, http: HttpClient) -> None:
        self.http = http
        self._sections: dict[str, PlexSection] | None = None

    @classmethod
    def from_config(cls, config: ProviderConfig, *, throttle: Any = None) -> PlexClient:
        """A client for the saved integration: its base URL (required: the server is the admin's own) and its secret
        "token". Plex is self-hosted, so a LAN address is allowed."""
        if not (config.base_url or "").strip():
            raise UrlRejected(PROVIDER, "no server address is set: enter the Plex server's address, "
                                        "e.g. http://192.168.1.10:32400")
        token = config.secret("token").strip()
        if not token:
            raise BadCredentials(PROVIDER, "no token is set: enter the server's X-Plex-Token")
        http = HttpClient.from_config(config, config.base_url or "", allow_private=True, throttle=throttle,
                                      headers={**CLIENT_HEADERS, "X-Plex-Token": token})
        return cls(http)

    def __repr__(self) -> str:
        return f"<PlexClient {self.http.base_url}>"

    # --- calls -------------------------------------------------------------------------------------------------

    def check(self) -> dict[str, str]:
        """The server's identity (friendlyName, version, machineIdentifier). The root needs the token, unlike
        /identity, so this also proves the token is accepted."""
        container = self._container("/")
        identity = {key: str(container.get(key) or "") for key in ("friendlyName", "version", "machineIdentifier")}
        if not identity["machineIdentifier"]:
            raise BadResponse(PROVIDER, "GET /: the answer does not look like a Plex Media Server's")
        return identity

    def sections(self) -> list[PlexSection]:
        """The server's movie, show and music sections (photo and other sections are left out)."""
        container = self._container("/library/sections/all")
        found = []
        for entry in _entries(container, "Directory"):
            kind, key = entry.get("type"), entry.get("key")
            if kind in IMPORTED_TYPES and key not in (None, ""):
                found.append(PlexSection(key=str(key), title=str(entry.get("title") or ""), type=str(kind)))
        self._sections = {section.key: section for section in found}
        return found

    def count(self, section_key: str) -> int:
        """How many items `iter_items` yields for a section, asked as an empty page (cheap at any size)."""
        section = self._section(section_key)
        container = self._container(self._all_path(section), params={
            "type": IMPORTED_TYPES[section.type], "X-Plex-Container-Start": 0, "X-Plex-Container-Size": 0})
        total = _int(container.get("totalSize"))
        return total if total is not None else _int(container.get("size")) or 0

    def iter_items(self, section_key: str, *, page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[PlexItem]:
        """The section's movies, shows (with their seasons) or albums, a page at a time, in the server's order."""
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        section = self._section(section_key)
        path = self._all_path(section)
        seasons = self._seasons(path, page_size) if section.type == "show" else {}
        params = {"type": IMPORTED_TYPES[section.type], "includeGuids": 1}
        for meta, container in self._pages(path, params, page_size):
            yield parse_item(meta, container, seasons.get(str(meta.get("ratingKey") or ""), ()))

    # --- internals ---------------------------------------------------------------------------------------------

    def _section(self, key: str) -> PlexSection:
        key = str(key)
        if self._sections is None or key not in self._sections:
            self.sections()
        section = (self._sections or {}).get(key)
        if section is None:
            raise NotFoundAt(PROVIDER, f"library section {key} is not on the server (or is not a movie, TV or "
                                       "music section): choose the sections again")
        return section

    @staticmethod
    def _all_path(section: PlexSection) -> str:
        return f"/library/sections/{quote(section.key, safe='')}/all"

    def _container(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        data = self.http.get_json(path, params=params)
        container = data.get("MediaContainer") if isinstance(data, dict) else None
        if not isinstance(container, dict):
            raise BadResponse(PROVIDER, f"GET {path}: the answer is not a Plex MediaContainer")
        return container

    def _pages(self, path: str, params: Mapping[str, Any],
               page_size: int) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(entry, its container) for every entry of a listing, asked page by page. An entry seen on an earlier page
        (the library changed while paging) is not yielded twice. A server that answers without `totalSize` did not
        page: its one answer is the whole listing."""
        start = 0
        seen: set[str] = set()
        while True:
            container = self._container(path, params={**params, "X-Plex-Container-Start": start,
                                                      "X-Plex-Container-Size": page_size})
            entries = _entries(container, "Metadata")
            for meta in entries:
                rating_key = str(meta.get("ratingKey") or "")
                if rating_key and rating_key in seen:
                    continue
                seen.add(rating_key)
                yield meta, container
            total = _int(container.get("totalSize"))
            start += len(entries)
            if not entries or total is None or start >= total:
                return

    def _seasons(self, path: str, page_size: int) -> dict[str, list[tuple[int, int, int | None]]]:
        """Seasons of every show in a section, by the show's rating key: (number, episodes owned, None)."""
        by_show: dict[str, list[tuple[int, int, int | None]]] = {}
        for meta, container in self._pages(path, {"type": SEASON_TYPE}, page_size):
            show = meta.get("parentRatingKey") or container.get("parentRatingKey")
            number = _int(meta.get("index"))
            if show is None or number is None:
                continue
            by_show.setdefault(str(show), []).append((number, _int(meta.get("leafCount")) or 0, None))
        return by_show


# --- parsing (pure: JSON in, dataclasses out) ------------------------------------------------------------------


def parse_item(meta: Mapping[str, Any], container: Mapping[str, Any] | None = None,
               seasons: Sequence[tuple[int, int, int | None]] = ()) -> PlexItem:
    """One Metadata entry of a listing as a PlexItem. Attributes a container "hoists" from its entries (an album
    list's `parentTitle`) are looked up there when the entry lacks them, as the spec says clients should."""
    hoisted = container or {}
    kind = str(meta.get("type") or hoisted.get("viewGroup") or "")
    guid = str(meta.get("guid") or "")
    edition = _text(meta.get("editionTitle"))
    variants = [parse_variant(media, edition) for media in _entries(meta, "Media")]
    artist = meta.get("parentTitle") if meta.get("parentTitle") is not None else hoisted.get("parentTitle")
    return PlexItem(
        rating_key=str(meta.get("ratingKey") or ""), guid=guid, type=kind, title=_text(meta.get("title")) or "",
        year=_int(meta.get("year")), originally_available_at=_date(meta.get("originallyAvailableAt")),
        original_title=_text(meta.get("originalTitle")), summary=_text(meta.get("summary")),
        studio=_text(meta.get("studio")), content_rating=_text(meta.get("contentRating")),
        duration_minutes=_minutes(meta.get("duration")), rating=_rating(meta), genres=_tag_names(meta, "Genre"),
        directors=_tag_names(meta, "Director"), writers=_tag_names(meta, "Writer"), roles=_tag_names(meta, "Role"),
        artist=_text(artist) if kind == "album" else None, ids=external_ids(guid, meta.get("Guid")),
        thumb=_text(meta.get("thumb")), edition=edition or next((v.edition for v in variants if v.edition), None),
        leaf_count=_int(meta.get("leafCount")), variants=variants, seasons=sorted(seasons))


def parse_variant(media: Mapping[str, Any], item_edition: str | None = None) -> PlexVariant:
    """One Media entry: its quality, and its first part's file (the edition named in its path, else the item's)."""
    parts = _entries(media, "Part")
    path = str(parts[0].get("file") or "") if parts else ""
    sizes = [size for size in (_int(part.get("size")) for part in parts) if size is not None]
    raw_resolution = _text(media.get("videoResolution"))
    return PlexVariant(
        media_id=str(media.get("id") or ""),
        resolution=resolution_class(raw_resolution) or raw_resolution,
        video_codec=_text(media.get("videoCodec")), audio_codec=_text(media.get("audioCodec")),
        container=_text(media.get("container")) or (_text(parts[0].get("container")) if parts else None),
        edition=edition_from_path(path) or item_edition, file=_base_name(path), size=sum(sizes) if sizes else None,
        duration_ms=_int(media.get("duration")), width=_int(media.get("width")), height=_int(media.get("height")),
        parts=len(parts) or 1)


def external_ids(guid: str, entries: Any) -> dict[str, str]:
    """IMDb/TMDB/TVDB (and MusicBrainz) ids from the Guid entries, or from a legacy agent's guid."""
    ids: dict[str, str] = {}
    for entry in entries if isinstance(entries, list) else ():
        scheme, _, value = str(entry.get("id") if isinstance(entry, dict) else "").partition("://")
        name = _GUID_SCHEMES.get(scheme.lower())
        if name and value.strip():
            ids.setdefault(name, value.strip())
    legacy = _LEGACY_AGENT.match(guid or "")
    if legacy:
        ids.setdefault(_LEGACY_IDS[legacy.group(1)], legacy.group(2))
    return {name: value for name, value in ids.items() if name not in _ID_SHAPES or _ID_SHAPES[name].match(value)}


def edition_from_path(path: str) -> str | None:
    """The edition Plex's naming convention puts in a file or folder name ("{edition-Director's Cut}")."""
    matches = _EDITION_IN_NAME.findall(path or "")
    return matches[-1].strip() or None if matches else None


def _entries(obj: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    value = obj.get(key)
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def _tag_names(meta: Mapping[str, Any], key: str) -> list[str]:
    return list(dict.fromkeys(name for name in (_text(tag.get("tag")) for tag in _entries(meta, key)) if name))


def _text(value: Any) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _minutes(duration_ms: Any) -> int | None:
    ms = _int(duration_ms)
    return round(ms / 60000) if ms and ms > 0 else None


def _date(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _rating(meta: Mapping[str, Any]) -> float | None:
    """The audience rating (TMDB's or IMDb's users, with the default agent) before the critics' rating, 0–10."""
    for key in ("audienceRating", "rating"):
        try:
            value = float(meta[key])
        except (KeyError, TypeError, ValueError):
            continue
        if 0 <= value <= 10:
            return round(value, 1)
    return None


def _base_name(path: str) -> str | None:
    """A file's name without its directories, whichever separator the server's platform uses."""
    return path.replace("\\", "/").rsplit("/", 1)[-1] or None if path else None


__all__ = ["PlexClient", "PlexItem", "PlexSection", "PlexVariant", "edition_from_path", "external_ids",
           "parse_item", "parse_variant", "PROVIDER", "IMPORTED_TYPES"]
