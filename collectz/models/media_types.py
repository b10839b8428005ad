"""Media types and the type-specific fields each keeps in `media.type_details`.

The schema is the one place that says which detail fields a type has; the model refuses
unknown keys or wrongly typed values, and the add/edit form is built from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MEDIA_TYPES: dict[str, str] = {
    "movie": "Movie",
    "tv_series": "TV series",
    "tv_episode": "TV episode",
    "book": "Book",
    "audio": "Music",
    "game": "Game",
    "comic_book": "Comic",
    "other": "Other",
}

# Library submenu: URL slug -> media types it shows.
LIBRARY_SECTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "all": ("All", ()),
    "movies": ("Movies", ("movie",)),
    "tv": ("TV", ("tv_series", "tv_episode")),
    "books": ("Books", ("book",)),
    "music": ("Music", ("audio",)),
    "games": ("Games", ("game",)),
    "comics": ("Comics", ("comic_book",)),
    "other": ("Other", ("other",)),
}

SIGNED_ROLES = ("author", "producer", "cast")


@dataclass(frozen=True)
class DetailField:
    name: str
    label: str
    kind: type = str  # str or int
    max_length: int = 255
    # False: kept and shown, but the form records it another way (a game's developers are people).
    in_form: bool = True


def _f(name: str, label: str, kind: type = str, in_form: bool = True) -> DetailField:
    return DetailField(name, label, kind, in_form=in_form)


TYPE_DETAILS: dict[str, tuple[DetailField, ...]] = {
    "movie": (_f("studio", "Studio"), _f("resolution", "Resolution"), _f("edition", "Edition")),
    "tv_series": (_f("network", "Network"), _f("status", "Status")),
    "tv_episode": (_f("series_title", "Series"), _f("season", "Season", int), _f("episode", "Episode", int)),
    "book": (
        _f("publisher", "Publisher"),
        _f("edition", "Edition"),
        _f("series", "Series"),
        _f("series_number", "Number in series"),
        _f("pages", "Pages", int),
    ),
    "audio": (_f("label", "Label"), _f("track_count", "Tracks", int)),
    "game": (_f("platform", "Platform"), _f("developer", "Developer", in_form=False), _f("region", "Region")),
    "comic_book": (
        _f("series", "Series"),
        _f("issue", "Issue"),
        _f("volume", "Volume"),
        _f("publisher", "Publisher"),
        _f("cover_date", "Cover date"),
        _f("pages", "Pages", int),
    ),
    "other": (_f("kind", "Kind of item"),),
}


@dataclass(frozen=True)
class PersonRole:
    key: str
    label: str  # one person
    plural: str  # the form's label: several names may be given


# Every role a person can have on an item, in the order the detail view lists them.
PERSON_ROLES: dict[str, PersonRole] = {
    r.key: r
    for r in (
        PersonRole("author", "Author", "Authors"),
        PersonRole("director", "Director", "Directors"),
        PersonRole("writer", "Writer", "Writers"),
        PersonRole("artist", "Artist", "Artists"),
        PersonRole("inker", "Inker", "Inkers"),
        PersonRole("colorist", "Colorist", "Colorists"),
        PersonRole("illustrator", "Illustrator", "Illustrators"),
        PersonRole("developer", "Developer", "Developers"),
        PersonRole("creator", "Creator", "Creators"),
        PersonRole("producer", "Producer", "Producers"),
        PersonRole("cast", "Cast", "Cast"),
    )
}

# The roles the add/edit form asks for, per type (imports may add other known roles).
TYPE_ROLES: dict[str, tuple[str, ...]] = {
    "movie": ("director", "cast"),
    "tv_series": ("director", "cast"),
    "tv_episode": ("director", "cast"),
    "book": ("author",),
    "audio": ("artist",),
    "game": ("developer",),
    "comic_book": ("writer", "artist", "inker", "colorist"),
    "other": ("creator",),
}

# Runtime (minutes) is a column for these; books and comics count pages (a type detail).
RUNTIME_TYPES = ("movie", "tv_series", "tv_episode", "audio")
# Only a TV series keeps a list of owned seasons.
SEASON_TYPES = ("tv_series",)
# Types TMDB knows, and the TMDB media type each maps to.
TMDB_TYPES: dict[str, str] = {"movie": "movie", "tv_series": "tv", "tv_episode": "tv"}


class TypeDetailsError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def validate_type_details(media_type: str, details: dict[str, Any] | None) -> dict[str, Any]:
    """Return cleaned details for the type; raise TypeDetailsError naming the bad field."""
    if media_type not in TYPE_DETAILS:
        raise TypeDetailsError("media_type", f"unknown media type {media_type!r}")
    allowed = {f.name: f for f in TYPE_DETAILS[media_type]}
    clean: dict[str, Any] = {}
    for key, value in (details or {}).items():
        spec = allowed.get(key)
        if spec is None:
            raise TypeDetailsError(key, f"is not a field of {MEDIA_TYPES[media_type]}")
        if value is None or value == "":
            continue
        if spec.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                try:
                    value = int(str(value).strip())
                except ValueError:
                    raise TypeDetailsError(key, "must be a whole number") from None
            if value < 0:
                raise TypeDetailsError(key, "must not be negative")
        else:
            value = str(value).strip()
            if len(value) > spec.max_length:
                raise TypeDetailsError(key, f"must be at most {spec.max_length} characters")
        clean[key] = value
    return clean
