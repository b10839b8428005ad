"""A local fake of a Plex Media Server, answering like the Plex API spec documents (and like a real server does).

`FakePlex` is a WSGI app; run it with `tests.fakes.server.serve_wsgi(FakePlex(...))`. It serves three sections —
1 "Movies" (movie), 2 "TV Shows" (show), 3 "Music" (artist) — and, with `photos=True`, a 4th "Photos" section an
importer must ignore. The items are generated deterministically from the counts given, so every run sees the same
rating keys, guids and values, and a test can compute exact counts:

- movies: most are matched by the Plex agent (`plex://movie/…` with `Guid` entries for IMDb and TMDB, some also
  TVDB); every 10th has an IMDb id only; some carry a legacy agent guid (`com.plexapp.agents.imdb://tt…?lang=en`,
  no `Guid` entries); some are unmatched (`local://<ratingKey>`, no ids, no metadata). A few have an edition
  (`editionTitle` and `{edition-…}` in the file name, or the file name only, as older servers report it), a few a
  second, 4K version (two `Media`). The last `duplicates` movies are unmatched copies of earlier movies: same
  title and year, no ids — a catalog dedupes them by title + year.
- shows: seasons (plus a "Specials" season 0 on some) with `leafCount` = episodes present; some seasons miss an
  episode. Guid kinds as for movies (TVDB legacy agent `com.plexapp.agents.thetvdb://…`).
- albums (type 9), each with its artist as parent (`parentTitle`); artists are listed without a type.

Request handling follows the server: `X-Plex-Token` (header or query) or 401; JSON when `Accept: application/json`,
XML otherwise; `X-Plex-Container-Start`/`-Size` as headers or query parameters (a page then carries `offset` and
`totalSize`, and the `X-Plex-Container-Start`/`-Total-Size` headers); `type=` to list seasons (3), episodes (4),
artists (8) or albums (9) of a section; `Guid` entries only with `includeGuids=1`.

Type numbers are those a real server uses (and that the spec's own section-editing examples use: album 9, artist 8,
track 10); the spec's `MediaType` enum (artist 5, album 6) does not match what servers answer.

`mode` switches the whole server: "ok", "error" (500 with the server's HTML error page) or "slow" (answers after
`slow_seconds`). `requests` records (method, path, query) of every request, with a token sent in the query string
replaced by "<token>" so the token itself is never kept.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from lxml import etree

DATA = Path(__file__).parent / "plex"

MOVIE, SHOW, SEASON, EPISODE, ARTIST, ALBUM = 1, 2, 3, 4, 8, 9
# Each section's own kind of item (listed when no `type` is given) and the other types it can list.
SECTION_TYPES: dict[str, tuple[int, ...]] = {"movie": (MOVIE,), "show": (SHOW, SEASON, EPISODE),
                                             "artist": (ARTIST, ALBUM), "photo": ()}
VIEW_GROUPS = {MOVIE: "movie", SHOW: "show", SEASON: "season", EPISODE: "episode", ARTIST: "artist", ALBUM: "album"}
TITLE2 = {MOVIE: "All Movies", SHOW: "All Shows", SEASON: "All Seasons", EPISODE: "All Episodes",
          ARTIST: "All Artists", ALBUM: "All Albums"}

_ADJ = ("Silent", "Crimson", "Hidden", "Broken", "Golden", "Last", "Distant", "Frozen", "Electric", "Wild",
        "Midnight", "Secret", "Burning", "Hollow", "Iron", "Lost", "Paper", "Quiet", "Restless", "Velvet")
_NOUN = ("Harbor", "Kingdom", "Signal", "Garden", "Horizon", "River", "Empire", "Orchard", "Machine", "Frontier",
         "Lantern", "Voyage", "Canyon", "Island", "Mirror", "Station", "Summer", "Tide", "Winter", "Witness")
_SHOW_SUFFIX = ("Chronicles", "Files", "Diaries", "Academy", "Protocol", "Legacy", "Precinct", "Affair", "Project",
                "Society")
_FIRST = ("Ada", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kira", "Luca",
          "Maya", "Nils", "Olga", "Pablo", "Quinn", "Rosa", "Sven", "Tara")
_LAST = ("Abbott", "Becker", "Castro", "Duval", "Eriksen", "Fischer", "Gallo", "Hayes", "Ivanova", "Jensen",
         "Kowalski", "Lindqvist", "Moreau", "Novak", "Okafor", "Petrov", "Quint", "Rossi", "Sato", "Tanaka")
_GENRES = ("Drama", "Comedy", "Thriller", "Science Fiction", "Animation", "Documentary", "Romance", "Horror",
           "Adventure", "Crime", "Fantasy", "Mystery")
_MUSIC_GENRES = ("Rock", "Jazz", "Electronic", "Classical", "Folk", "Hip-Hop", "Pop", "Soul")
_STUDIOS = ("Warner Bros. Pictures", "A24", "Studio Ghibli", "Pathé", "Gaumont", "Focus Features", "Toho")
_NETWORKS = ("HBO", "BBC One", "ARTE", "NHK", "Netflix", "AMC")
_LABELS = ("RCA", "Blue Note", "Warp", "Deutsche Grammophon", "Sub Pop", "Nonesuch")
_RATINGS = ("PG", "PG-13", "R", "G", "NR")
_EDITIONS = ("Director's Cut", "Extended Edition", "Theatrical", "Unrated")
# (videoResolution, width, height, videoCodec): the values a server reports.
_RESOLUTIONS = (("1080", 1920, 800, "h264"), ("720", 1280, 536, "h264"), ("sd", 720, 480, "mpeg2video"),
                ("1080", 1920, 1080, "h264"), ("4k", 3840, 1600, "hevc"))
_AUDIO = ("aac", "ac3", "eac3", "dts", "truehd")

_UNAUTHORIZED = b"<html><head><title>Unauthorized</title></head><body><h1>401 Unauthorized</h1></body></html>"
_SERVER_ERROR = (b"<html><head><title>Internal Server Error</title></head><body><h1>500 Internal Server Error</h1>"
                 b"</body></html>")
_NOT_FOUND = b"<html><head><title>Not Found</title></head><body><h1>404 Not Found</h1></body></html>"
_BAD_REQUEST = b"<html><head><title>Bad Request</title></head><body><h1>400 Bad Request</h1></body></html>"

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def _load(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


def _hex(kind: str, number: int) -> str:
    """A stable 24-hex-digit Plex id, like the ones in plex:// guids."""
    return hashlib.sha1(f"{kind}:{number}".encode()).hexdigest()[:24]


def _person(number: int) -> str:
    return f"{_FIRST[number % 20]} {_LAST[(number // 20 + number * 7) % 20]}"


def _tags(names: Iterable[str]) -> list[dict[str, str]]:
    return [{"tag": name} for name in dict.fromkeys(names)]


def _numbered(base: str, index: int, size: int, word: str = "") -> str:
    """Titles stay unique past the number of word combinations: "Silent Harbor", …, "Silent Harbor 2"."""
    return base if index < size else f"{base} {word}{index // size + 1}"


class FakePlex:
    """A Plex Media Server with 3 sections of generated items; see the module docstring."""

    # A library of exactly 5,000 items (3,000 movies, 1,000 shows, 1,000 albums) for the acceptance test.
    ACCEPTANCE: dict[str, int] = {"movies": 3000, "shows": 1000, "albums": 1000}

    def __init__(self, *, token: str = "plex-token-123", movies: int = 20, shows: int = 5, albums: int = 10,
                 seasons_per_show: int = 2, episodes_per_season: int = 4, photos: bool = False) -> None:
        self.token = token
        self.counts = {"movies": movies, "shows": shows, "albums": albums}
        self.seasons_per_show = seasons_per_show
        self.episodes_per_season = episodes_per_season
        # Unmatched copies of earlier movies (same title and year, no ids). Importing every section therefore
        # creates `total_items - duplicates` items and makes `duplicates` of them a second copy (for ACCEPTANCE:
        # 4,998 created, 2 updated); importing again creates nothing.
        self.duplicates = min(2, movies // 10)
        self.mode = "ok"
        self.slow_seconds = 2.0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._server = _load("server")
        self._identity = _load("identity")
        self._templates = {name: _load(name) for name in ("movie", "show", "season", "album", "artist")}
        sections = _load("sections")["MediaContainer"]["Directory"]
        self.sections: list[dict[str, Any]] = [s for s in sections if photos or s["type"] != "photo"]
        self.machine_identifier = self._server["MediaContainer"]["machineIdentifier"]

    @property
    def total_items(self) -> int:
        """Movies + shows + albums: what an import of every section reads."""
        return sum(self.counts.values())

    # --- the generated library (also a test's oracle) --------------------------------------------------------

    def items(self, section_key: str, type_code: int | None = None) -> list[dict[str, Any]]:
        """The full Metadata entries (with Guid) a section lists for a type (its own kind when None)."""
        section = self._section(section_key)
        if section is None:
            return []
        codes = SECTION_TYPES[section["type"]]
        type_code = type_code if type_code is not None else (codes[0] if codes else None)
        if type_code not in codes:
            return []
        return {MOVIE: self._movies, SHOW: self._shows, SEASON: self._seasons, EPISODE: self._episodes,
                ARTIST: self._artists, ALBUM: self._albums}[type_code]

    def _section(self, key: str) -> dict[str, Any] | None:
        return next((s for s in self.sections if s["key"] == key), None)

    @cached_property
    def _movies(self) -> list[dict[str, Any]]:
        count = self.counts["movies"]
        return [self._movie(i, count) for i in range(count)]

    def _movie(self, i: int, count: int) -> dict[str, Any]:
        first_duplicate = count - self.duplicates
        source = (i - first_duplicate) * 3 + 1 if i >= first_duplicate else i
        rk = 100001 + i
        base = f"{_ADJ[source % 20]} {_NOUN[(source // 20) % 20]}"
        title = _numbered(("The " if source % 3 == 0 else "") + base, source, 400)
        year = 1950 + (source * 37) % 74
        item = copy.deepcopy(self._templates["movie"])
        item.update(ratingKey=str(rk), key=f"/library/metadata/{rk}", title=title, year=year,
                    titleSort=title.removeprefix("The "), slug=title.casefold().replace(" ", "-"),
                    thumb=f"/library/metadata/{rk}/thumb/1703239236",
                    art=f"/library/metadata/{rk}/art/1703239236", addedAt=1600000000 + i,
                    originallyAvailableAt=f"{year}-{1 + i % 12:02d}-{1 + i % 28:02d}", duration=(85 + i % 60) * 60000,
                    studio=_STUDIOS[i % len(_STUDIOS)], contentRating=_RATINGS[i % len(_RATINGS)],
                    summary=f"{title}: a story of {_NOUN[(i * 3) % 20].lower()}s and {_ADJ[(i * 7) % 20].lower()} "
                            "choices.",
                    audienceRating=round(5 + (i * 13 % 50) / 10, 1), rating=round((i * 7 % 100) / 10, 1),
                    Genre=_tags((_GENRES[i % 12], _GENRES[(i * 5 + 3) % 12])),
                    Director=_tags([_person(i * 3)]), Writer=_tags([_person(i * 3 + 1), _person(i * 3 + 2)]),
                    Role=_tags(_person(i * 5 + k + 400) for k in range(3)))
        kind = "local" if i >= first_duplicate else ("plex", "plex", "plex", "plex", "plex", "plex", "plex",
                                                       "imdb-only", "legacy", "local")[i % 10]
        item["Guid"] = []
        if kind in ("plex", "imdb-only"):
            item["guid"] = f"plex://movie/{_hex('movie', i)}"
            item["Guid"].append({"id": f"imdb://tt{1000000 + i:07d}"})
            if kind == "plex":
                item["Guid"].append({"id": f"tmdb://{10000 + i * 3}"})
                if i % 4 == 0:
                    item["Guid"].append({"id": f"tvdb://{50000 + i}"})
        elif kind == "legacy":
            item["guid"] = f"com.plexapp.agents.imdb://tt{1000000 + i:07d}?lang=en"
        else:  # unmatched: only what the file name says
            item["guid"] = f"local://{rk}"
            for key in ("summary", "studio", "contentRating", "rating", "audienceRating", "tagline", "Genre",
                        "Country", "Director", "Writer", "Role", "originallyAvailableAt", "audienceRatingImage",
                        "ratingImage"):
                item.pop(key, None)
        if not item["Guid"]:
            del item["Guid"]
        item.pop("editionTitle", None)
        edition = _EDITIONS[(i // 11) % 4] if i % 11 in (5, 6) and i < first_duplicate else None
        if edition and i % 11 == 5:
            item["editionTitle"] = edition
        item["Media"] = self._movie_media(i, title, year, edition)
        return item

    def _movie_media(self, i: int, title: str, year: int, edition: str | None) -> list[dict[str, Any]]:
        resolution, width, height, codec = _RESOLUTIONS[i % 5]
        container = "mkv" if i % 2 == 0 else "mp4"
        name = f"{title} ({year})" + (f" {{edition-{edition}}}" if edition else "")
        media = [self._media(i * 2, resolution, width, height, codec, _AUDIO[i % 5], container,
                             f"/data/media/Movies/{title} ({year})/{name}.{container}", 1_500_000_000 + i * 12345,
                             (85 + i % 60) * 60000)]
        if i % 7 == 3:  # a second version of the same film
            other = ("1080", 1920, 1080, "h264") if resolution == "4k" else ("4k", 3840, 2160, "hevc")
            media.append(self._media(i * 2 + 1, *other, "truehd", "mkv",
                                     f"/data/media/Movies/{title} ({year})/{title} ({year}) - {other[0]}.mkv",
                                     6_000_000_000 + i * 12345, (85 + i % 60) * 60000))
        return media

    @staticmethod
    def _media(number: int, resolution: str, width: int, height: int, video_codec: str, audio_codec: str,
               container: str, path: str, size: int, duration: int) -> dict[str, Any]:
        part = {"id": 2_000_000 + number, "key": f"/library/parts/{2_000_000 + number}/1600000000/file.{container}",
                "duration": duration, "file": path, "size": size, "container": container}
        return {"id": 1_000_000 + number, "duration": duration, "bitrate": size * 8 // max(duration, 1),
                "width": width, "height": height, "aspectRatio": round(width / height, 2), "audioChannels": 6,
                "audioCodec": audio_codec, "videoCodec": video_codec, "videoResolution": resolution,
                "container": container, "videoFrameRate": "24p", "Part": [part]}

    @cached_property
    def _show_tree(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        shows: list[dict[str, Any]] = []
        seasons: list[dict[str, Any]] = []
        for i in range(self.counts["shows"]):
            show = self._show(i)
            own = [self._season(show, i, number, episodes, len(seasons) + k)
                   for k, (number, episodes) in enumerate(self.season_plan(i))]
            show.update(leafCount=sum(s["leafCount"] for s in own), childCount=len(own),
                        viewedLeafCount=sum(s["viewedLeafCount"] for s in own))
            shows.append(show)
            seasons.extend(own)
        return shows, seasons

    @property
    def _shows(self) -> list[dict[str, Any]]:
        return self._show_tree[0]

    @property
    def _seasons(self) -> list[dict[str, Any]]:
        return self._show_tree[1]

    def season_plan(self, i: int) -> list[tuple[int, int]]:
        """(season number, episodes present) of show i: a Specials season 0 on every 5th show from the 3rd, and
        the last season of every 3rd show from the 2nd misses an episode."""
        plan = [(0, 1)] if i % 5 == 2 else []
        for number in range(1, self.seasons_per_show + 1):
            short = i % 3 == 1 and number == self.seasons_per_show
            plan.append((number, max(1, self.episodes_per_season - 1) if short else self.episodes_per_season))
        return plan

    def _show(self, i: int) -> dict[str, Any]:
        rk = 200001 + i
        title = _numbered(f"{_NOUN[i % 20]} {_SHOW_SUFFIX[(i // 20) % 10]}", i, 200)
        year = 1980 + (i * 11) % 44
        item = copy.deepcopy(self._templates["show"])
        item.update(ratingKey=str(rk), key=f"/library/metadata/{rk}/children", title=title, titleSort=title,
                    year=year, slug=title.casefold().replace(" ", "-"),
                    thumb=f"/library/metadata/{rk}/thumb/1715112830",
                    art=f"/library/metadata/{rk}/art/1715112830", theme=f"/library/metadata/{rk}/theme/1715112830",
                    originallyAvailableAt=f"{year}-{1 + i % 12:02d}-{1 + i % 28:02d}", addedAt=1600000000 + i,
                    studio=_NETWORKS[i % len(_NETWORKS)], summary=f"{title}: a series.",
                    audienceRating=round(6 + (i * 7 % 40) / 10, 1), duration=(25 + (i % 3) * 20) * 60000,
                    Genre=_tags((_GENRES[(i + 1) % 12],)), Role=_tags(_person(i * 3 + k + 900) for k in range(3)))
        kind = ("plex", "plex", "plex", "tvdb-only", "legacy", "local")[i % 6]
        tvdb = 70000 + i
        if kind == "plex":
            item["guid"] = f"plex://show/{_hex('show', i)}"
            item["Guid"] = [{"id": f"imdb://tt{2000000 + i:07d}"}, {"id": f"tmdb://{30000 + i * 3}"},
                            {"id": f"tvdb://{tvdb}"}]
        elif kind == "tvdb-only":
            item["guid"] = f"plex://show/{_hex('show', i)}"
            item["Guid"] = [{"id": f"tvdb://{tvdb}"}]
        else:
            item.pop("Guid")
            item["guid"] = f"com.plexapp.agents.thetvdb://{tvdb}?lang=en" if kind == "legacy" else f"local://{rk}"
        return item

    def _season(self, show: dict[str, Any], i: int, number: int, episodes: int, position: int) -> dict[str, Any]:
        rk = 300001 + position
        item = copy.deepcopy(self._templates["season"])
        item.update(ratingKey=str(rk), key=f"/library/metadata/{rk}/children", parentRatingKey=show["ratingKey"],
                    guid=f"plex://season/{_hex('season', rk)}", parentGuid=show["guid"], parentTitle=show["title"],
                    parentKey=f"/library/metadata/{show['ratingKey']}", parentStudio=show["studio"],
                    parentYear=show["year"], parentSlug=show["slug"], index=number,
                    title="Specials" if number == 0 else f"Season {number}", leafCount=episodes,
                    viewedLeafCount=episodes // 2 if i % 2 else 0, thumb=f"/library/metadata/{rk}/thumb/1681152133",
                    parentThumb=show["thumb"], parentTheme=show["theme"], art=show["art"])
        return item

    @cached_property
    def _episodes(self) -> list[dict[str, Any]]:
        """Episodes (type 4), for completeness: a client needs only the seasons' counts."""
        episodes = []
        for season in self._seasons:
            for number in range(1, season["leafCount"] + 1):
                rk = 600001 + len(episodes)
                episodes.append({
                    "ratingKey": str(rk), "key": f"/library/metadata/{rk}", "type": "episode",
                    "guid": f"plex://episode/{_hex('episode', rk)}", "title": f"Episode {number}", "index": number,
                    "parentIndex": season["index"], "parentRatingKey": season["ratingKey"],
                    "parentTitle": season["title"], "grandparentRatingKey": season["parentRatingKey"],
                    "grandparentTitle": season["parentTitle"], "grandparentGuid": season["parentGuid"],
                    "addedAt": 1600000000 + rk, "duration": 2640000,
                    "Media": [self._media(rk, "1080", 1920, 1080, "h264", "aac", "mkv",
                                          f"/data/media/TV Shows/{season['parentTitle']}/{season['title']}/"
                                          f"S{season['index']:02d}E{number:02d}.mkv", 900_000_000, 2640000)]})
        return episodes

    @cached_property
    def _artists(self) -> list[dict[str, Any]]:
        artists = []
        for j in range(max(1, (self.counts["albums"] + 2) // 3) if self.counts["albums"] else 0):
            rk = 400001 + j
            item = copy.deepcopy(self._templates["artist"])
            name = _numbered(f"The {_ADJ[(j * 3) % 20]} {_NOUN[(j * 7 + j // 20) % 20]}s", j, 400)
            item.update(ratingKey=str(rk), key=f"/library/metadata/{rk}/children", title=name,
                        titleSort=name.removeprefix("The "), guid=f"plex://artist/{_hex('artist', j)}",
                        thumb=f"/library/metadata/{rk}/thumb/1716801576", art=f"/library/metadata/{rk}/art/1716801576",
                        summary=f"{name}, a band.", Genre=_tags((_MUSIC_GENRES[j % 8],)))
            artists.append(item)
        return artists

    @cached_property
    def _albums(self) -> list[dict[str, Any]]:
        albums = []
        artists = self._artists
        for i in range(self.counts["albums"]):
            artist = artists[i % len(artists)]
            rk = 500001 + i
            title = _numbered(f"{_ADJ[i % 20]} {_NOUN[(i // 20) % 20]} Sessions", i, 400, "Vol. ")
            year = 1960 + (i * 17) % 64
            item = copy.deepcopy(self._templates["album"])
            item.update(ratingKey=str(rk), key=f"/library/metadata/{rk}/children", title=title, year=year,
                        parentRatingKey=artist["ratingKey"], parentGuid=artist["guid"], parentTitle=artist["title"],
                        parentKey=f"/library/metadata/{artist['ratingKey']}", parentThumb=artist["thumb"],
                        art=artist["art"], thumb=f"/library/metadata/{rk}/thumb/1715112705",
                        originallyAvailableAt=f"{year}-{1 + i % 12:02d}-{1 + i % 28:02d}",
                        studio=_LABELS[i % len(_LABELS)], leafCount=8 + i % 10, addedAt=1600000000 + i,
                        summary=f"{title}, by {artist['title']}.", rating=float(4 + i % 7),
                        Genre=_tags((_MUSIC_GENRES[i % 8],)), guid=f"plex://album/{_hex('album', i)}")
            if i % 2 == 0:
                item["Guid"] = [{"id": f"mbid://{_hex('mbid', i)[:8]}-{_hex('mbid', i)[8:12]}-4000-8000-"
                                       f"{_hex('mbid', i)[12:24]}"}]
            else:
                item.pop("Guid")
            if i % 9 == 8:  # unmatched: no agent guid, no review
                item["guid"] = f"local://{rk}"
                for key in ("summary", "rating", "Genre", "studio", "Guid"):
                    item.pop(key, None)
            albums.append(item)
        return albums

    @cached_property
    def _by_rating_key(self) -> dict[str, dict[str, Any]]:
        everything = (*self._movies, *self._shows, *self._seasons, *self._artists, *self._albums)
        return {item["ratingKey"]: item for item in everything}

    # --- WSGI ----------------------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        query = dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
        token = environ.get("HTTP_X_PLEX_TOKEN") or query.get("X-Plex-Token")
        recorded = {k: ("<token>" if k == "X-Plex-Token" else v) for k, v in query.items()}
        with self._lock:
            self.requests.append((method, path, recorded))
        if self.mode == "slow":
            time.sleep(self.slow_seconds)
        if self.mode == "error":
            return self._html(start_response, "500 Internal Server Error", _SERVER_ERROR)
        if path == "/identity":  # the one endpoint that needs no token
            return self._answer(environ, start_response, self._identity)
        if token != self.token:
            return self._html(start_response, "401 Unauthorized", _UNAUTHORIZED)
        if method != "GET":
            return self._html(start_response, "400 Bad Request", _BAD_REQUEST)
        body = self._route(path, environ, query)
        if body is None:
            return self._html(start_response, "404 Not Found", _NOT_FOUND)
        return self._answer(environ, start_response, body)

    def _route(self, path: str, environ: dict[str, Any], query: dict[str, str]) -> dict[str, Any] | None:
        parts = [p for p in path.split("/") if p]
        if not parts:
            return self._server
        if parts in (["library", "sections"], ["library", "sections", "all"]):
            return {"MediaContainer": {"size": len(self.sections), "allowSync": False, "title1": "Plex Library",
                                       "Directory": self.sections}}
        if len(parts) == 4 and parts[:2] == ["library", "sections"] and parts[3] == "all":
            return self._listing(parts[2], environ, query)
        if len(parts) in (3, 4) and parts[:2] == ["library", "metadata"]:
            return self._metadata(parts[2], children=len(parts) == 4 and parts[3] == "children", environ=environ,
                                  query=query)
        return None

    def _listing(self, key: str, environ: dict[str, Any], query: dict[str, str]) -> dict[str, Any] | None:
        section = self._section(key)
        if section is None:
            return None
        raw_type = query.get("type", "")
        type_code = int(raw_type) if raw_type.isdigit() else None
        items = self.items(key, type_code)
        own = type_code if type_code is not None else (SECTION_TYPES[section["type"]] or (None,))[0]
        container: dict[str, Any] = {
            "allowSync": True, "art": section["art"], "identifier": "com.plexapp.plugins.library",
            "librarySectionID": int(key), "librarySectionTitle": section["title"],
            "librarySectionUUID": section["uuid"], "mediaTagPrefix": "/system/bundle/media/flags/",
            "mediaTagVersion": 1680272530, "thumb": section["thumb"], "title1": section["title"],
            "title2": TITLE2.get(own or 0, "All"), "viewGroup": VIEW_GROUPS.get(own or 0, section["type"]),
            "viewMode": 65592}
        return self._page(container, items, environ, query)

    def _metadata(self, rating_key: str, *, children: bool, environ: dict[str, Any],
                  query: dict[str, str]) -> dict[str, Any] | None:
        item = self._by_rating_key.get(rating_key)
        if item is None:
            return None
        if not children:
            return self._page({"identifier": "com.plexapp.plugins.library"}, [item], environ, query)
        kids = [s for s in self._seasons if s["parentRatingKey"] == rating_key] if item["type"] == "show" else [
            a for a in self._albums if a["parentRatingKey"] == rating_key] if item["type"] == "artist" else []
        container = {"identifier": "com.plexapp.plugins.library", "key": rating_key, "parentTitle": item["title"],
                     "title1": item["title"], "viewGroup": "season" if item["type"] == "show" else "album"}
        return self._page(container, kids, environ, query)

    @staticmethod
    def _page(container: dict[str, Any], items: list[dict[str, Any]], environ: dict[str, Any],
              query: dict[str, str]) -> dict[str, Any]:
        """One page of a listing, as the server pages: only when a start or size is asked for."""
        start_raw = environ.get("HTTP_X_PLEX_CONTAINER_START") or query.get("X-Plex-Container-Start")
        size_raw = environ.get("HTTP_X_PLEX_CONTAINER_SIZE") or query.get("X-Plex-Container-Size")
        paged = start_raw is not None or size_raw is not None
        start = max(0, int(start_raw)) if start_raw and start_raw.isdigit() else 0
        size = int(size_raw) if size_raw and size_raw.isdigit() else None
        page = items[start:] if size is None else items[start:start + size]
        if query.get("includeGuids") != "1":
            page = [{k: v for k, v in item.items() if k != "Guid"} for item in page]
        body = {"size": len(page), **container}
        if paged:
            body.update(offset=start, totalSize=len(items))
        if page:
            body["Metadata"] = page
        return {"MediaContainer": body}

    def _answer(self, environ: dict[str, Any], start_response: StartResponse, body: dict[str, Any]) -> list[bytes]:
        container = body["MediaContainer"]
        headers: list[tuple[str, str]] = []
        if "totalSize" in container:
            headers += [("X-Plex-Container-Start", str(container["offset"])),
                        ("X-Plex-Container-Total-Size", str(container["totalSize"]))]
        if "application/json" in environ.get("HTTP_ACCEPT", ""):
            payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            headers.append(("Content-Type", "application/json"))
        else:
            payload = etree.tostring(_xml("MediaContainer", container), xml_declaration=True, encoding="UTF-8")
            headers.append(("Content-Type", "text/xml;charset=utf-8"))
        start_response("200 OK", [*headers, ("Content-Length", str(len(payload)))])
        return [payload]

    @staticmethod
    def _html(start_response: StartResponse, status: str, body: bytes) -> list[bytes]:
        start_response(status, [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
        return [body]


def _xml(tag: str, data: dict[str, Any]) -> etree._Element:
    """The XML form of a JSON object, as the server writes it: scalars are attributes (booleans 1/0), arrays are
    child elements; a `Metadata` entry is a <Video> (movie, episode) or a <Directory> (show, season, artist, album)."""
    element = etree.Element(tag)
    for key, value in data.items():
        if isinstance(value, list):
            for child in value:
                child_tag = key
                if key == "Metadata":
                    child_tag = "Video" if child.get("type") in ("movie", "episode", "clip") else "Directory"
                element.append(_xml(child_tag, child))
        elif isinstance(value, dict):
            element.append(_xml(key, value))
        elif isinstance(value, bool):
            element.set(key, "1" if value else "0")
        elif value is not None:
            element.set(key, str(value))
    return element
