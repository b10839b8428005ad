"""Pure parsers: a file (path) in, records out. No database, no Flask.

Every parser yields `Record`s: plain JSON-able dicts (they are stored as `import_rows.raw` and validated by
`services.imports`, which owns every rule about values). A parser only reads and maps; it does not judge a value
(a year "19x5" is passed on as text and fails validation there, with the row's line number).

Keys of a record (all optional except `title`; absent or empty means "not given"):

    line            int   the line (CSV) or entry number (XML) in the source, for messages
    source_id       str   the entry's stable id in its source (Delicious uuidString, CSV import_ref); the
                          importer makes one for sources without ids
    media_type      str   our type key (movie, tv_series, tv_episode, book, audio, game, comic_book, other) or a
                          word a user would write ("Movie", "TV", "Music", "Blu-ray"...): see `media_type_of`
    title, original_title, overview, location, notes          str
    year, runtime, copies                                      str or int as read
    release_date    str   ISO date (YYYY-MM-DD); parsers convert their source's date format
    rating          str   0–10 as read (a 5-star source converts to 0–10)
    formats         list[str]
    isbn, ean, upc, asin, tmdb_id, tmdb_media_type, plex_guid, calibre_id      str
    people          list[[role, name]]  roles from models.media_types.PERSON_ROLES
    genres          list[str]
    details         dict[str, str]  type details (publisher, edition, series, series_number, pages, platform,
                                    studio, label, ...); keys the type does not have are kept as metadata
    signed_by, signed_role, signed_on, signed_at               str
    cover_url       str   an image to fetch later (the cover job)
    seasons         list[{number, available, expected}]  a series' seasons: episodes owned and episodes it has
                          ("episode_count", as providers say, is read as expected)
    variants        list[{source_key, resolution, video_codec, audio_codec, container, edition, file_path,
                          size_bytes, duration_ms}]  files/editions (media_variants); source_key is required
    alt_source_ids  list[str]  other stable ids of the same entry (a Plex rating key): a re-import maps back by any
    extra           dict[str, str]  anything else worth keeping, stored as item metadata (lossless import):
                                    purchase_date, purchase_price, current_value, owner, languages, ...
"""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]


class SourceError(ValueError):
    """The file as a whole cannot be read as this kind of source (empty, binary, wrong format, malformed,
    unsafe). The message is shown to the user as is: say what is wrong and where (line number) in plain words."""


# Words users and other tools write for a media type, casefolded, mapped to our keys.
_TYPE_WORDS: dict[str, str] = {
    **{key: key for key in ("movie", "tv_series", "tv_episode", "book", "audio", "game", "comic_book", "other")},
    "film": "movie", "movies": "movie", "dvd": "movie", "blu-ray": "movie", "bluray": "movie", "video": "movie",
    "4k uhd": "movie", "uhd": "movie",
    "tv": "tv_series", "tv series": "tv_series", "tv show": "tv_series", "tv shows": "tv_series",
    "series": "tv_series", "show": "tv_series", "television": "tv_series",
    "tv episode": "tv_episode", "episode": "tv_episode",
    "books": "book", "ebook": "book", "ebooks": "book", "e-book": "book", "audiobook": "book", "kindle": "book",
    "paperback": "book", "hardcover": "book",
    "music": "audio", "album": "audio", "cd": "audio", "vinyl": "audio", "lp": "audio", "record": "audio",
    "games": "game", "video game": "game", "video games": "game", "videogame": "game",
    "comic": "comic_book", "comics": "comic_book", "comic book": "comic_book", "graphic novel": "comic_book",
    "manga": "comic_book",
}


def media_type_of(word: str | None) -> str | None:
    """Our media type key for a word ("Movie", "TV series", "Music", "comic book"), or None if unknown."""
    key = " ".join(str(word or "").replace("_", " ").casefold().split())
    if not key:
        return None
    return _TYPE_WORDS.get(key) or _TYPE_WORDS.get(key.replace(" ", "_"))
