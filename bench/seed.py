"""The standard library data set (../shared/BENCH.md), seeded deterministically with Core bulk inserts.

Same seed and size → the same rows, so results compare across versions. Each item is built with the same
pure functions the app uses (`make_sort_title`, `services.indexing`), so search text and filter keys match
what the media service would have written. Words that benchmark cases search for ("Zephyr", "Night") appear
in titles only: no person, series, publisher, platform or note contains them.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, text
from stdnum import ean

from collectz.models import (
    Genre,
    Library,
    Media,
    MediaGenre,
    MediaPerson,
    MediaSeason,
    MediaUserState,
    Person,
    User,
)
from collectz.models.media import make_sort_title
from collectz.services.indexing import compose_search_text, derived_columns

SEED = 20261125
ITEMS = 100_000
TYPE_SHARES = (("movie", 45), ("book", 20), ("game", 15), ("tv_series", 10), ("audio", 10))
ZEPHYR_TITLES = 300
NIGHT_SHARE = 0.15
ARTICLE_SHARE = 0.28
RATED_SHARE = 1 / 3
MY_RATED_SHARE = 0.10
CHUNK = 5_000

ADJECTIVES = (
    "Silent Crimson Hidden Golden Broken Endless Wild Distant Frozen Burning Lost Secret Silver Hollow Bitter "
    "Brave Quiet Electric Ancient Final Savage Gentle Iron Velvet Scarlet Restless Stolen Wandering Sacred Violet "
    "Northern Southern Western Eastern Emerald Amber Shattered Forgotten Infinite Little Last First Second "
    "Hungry Lonely Fallen Rising Radiant Glass Paper Stone Copper Marble Neon Atomic Cosmic Urban Royal Wicked"
).split()
NOUNS = (
    "River Empire Garden Storm Kingdom Harbor Mirror Shadow Forest Ocean Mountain Desert City Island Road Bridge "
    "Tower Castle Valley Winter Summer Autumn Spring Machine Engine Planet Comet Moon Sun Star Dragon Wolf Raven "
    "Falcon Tiger Horse Lion Serpent Crown Sword Shield Letter Promise Secret Journey Voyage Return Legacy Echo "
    "Signal Frontier Horizon Canyon Lantern Compass Anchor Orchard Meadow Circus Carnival Station Avenue Harvest "
    "Orchestra Theory Paradox Cipher Archive Garrison Citadel Monsoon Glacier Volcano Atlas Pilgrim Stranger"
).split()
NIGHT_PATTERNS = ("{adj} Night", "Night of the {noun}", "{noun} Night", "One Night in the {noun}", "Night {noun}")
ZEPHYR_PATTERNS = ("Zephyr {noun}", "{adj} Zephyr", "The Zephyr of {noun}", "Zephyr and the {noun}")
PLAIN_PATTERNS = ("{adj} {noun}", "{noun} of the {noun2}", "{adj} {noun} {num}", "{noun} and {noun2}",
                  "Beyond the {noun}", "{noun}: {adj} {noun2}", "Return to {noun}", "{adj} {noun}s")
FIRST_NAMES = (
    "Ada Alan Alice Amara Anna Arjun Beatriz Boris Carla Chen Chiara Clara Daniel Diego Elena Emil Farah Felix "
    "Gabriel Grace Hana Hugo Ines Ivan Jamal Jana Jonas Julia Kenji Lara Leila Lucas Maya Marco Mei Mila Nadia "
    "Nikolai Nora Omar Oscar Paula Pedro Priya Rafael Rosa Samir Sara Sofia Tariq Teresa Tomas Uma Victor "
    "Wanda Xavier Yara Yusuf Zoe Amelie Bruno Celia Dmitri Esther Flora Goran Helga Igor Joao Kofi Lena"
).split()
LAST_NAMES = (
    "Abe Adler Alvarez Andersen Bauer Becker Bianchi Brooks Carter Castro Chen Costa Cruz Dahl Diaz Dubois "
    "Eriksen Fischer Fontaine Garcia Gomez Gruber Hansen Harper Hoffmann Horvat Ibrahim Ito Jensen Kaur Keller "
    "Kim Klein Kowalski Larsen Laurent Lee Lopez Marino Martin Meyer Moreau Nakamura Novak Okafor Olsen Park "
    "Petrov Popescu Quinn Reyes Ricci Rossi Sato Schmidt Silva Singh Sorensen Suzuki Tanaka Torres Vargas "
    "Vogel Wagner Walsh Weber Xu Yamada Young Zhang Ziegler Mendes Oliveira Haddad Mensah Kariuki Lindqvist"
).split()
GENRES = {
    "movie": ("Drama", "Comedy", "Thriller", "Action", "Horror", "Science Fiction", "Romance", "Documentary",
              "Animation", "Western", "Crime", "Fantasy"),
    "tv_series": ("Drama", "Comedy", "Crime", "Science Fiction", "Documentary", "Animation", "Fantasy"),
    "book": ("Fiction", "Mystery", "Fantasy", "Science Fiction", "Biography", "History", "Poetry", "Romance",
             "Cooking", "Travel"),
    "game": ("Action", "Adventure", "Puzzle", "Role-playing", "Strategy", "Sports", "Racing", "Platformer"),
    "audio": ("Jazz", "Rock", "Classical", "Pop", "Electronic", "Folk", "Hip hop", "Soul", "Blues"),
}
FORMATS = {
    "movie": ("DVD", "Blu-ray", "4K UHD", "Digital", "VHS"),
    "tv_series": ("DVD", "Blu-ray", "Digital"),
    "book": ("Hardcover", "Paperback", "eBook", "Audiobook"),
    "game": ("Disc", "Cartridge", "Digital"),
    "audio": ("CD", "Vinyl", "Cassette", "Digital"),
}
PLATFORMS = ("PlayStation 5", "PlayStation 4", "PlayStation 2", "Xbox Series X", "Xbox 360", "Nintendo Switch",
             "Nintendo 64", "Super Nintendo", "Game Boy", "PC", "Sega Mega Drive", "Atari 2600")
RESOLUTIONS = ("SD", "720p", "1080p", "1080p", "4K")
STUDIOS = ("Harbor Pictures", "Lantern Films", "Copper Studio", "Atlas Works", "Meadow House")
PUBLISHERS = ("Orchard Press", "Compass Books", "Citadel Publishing", "Paper Lantern", "Atlas House")
LABELS = ("Blue Anchor Records", "Copper Tone", "Velvet Groove", "Signal Audio")
NETWORKS = ("Channel Nine", "Horizon TV", "Atlas Network", "Meridian")
SERIES = ("The Harbor Chronicles", "Iron Crown Saga", "Atlas Files", "The Glass Garden Cycle", "Frontier Tales")
LOCATIONS = ("Living room shelf", "Study bookcase", "Attic box 1", "Attic box 2", "Bedroom", "Basement rack",
             "Office", "Kids' room", "Game cabinet", "Vinyl crate")
NOTES = ("Gift from a friend.", "Bought at a flea market.", "Needs a new case.", "Lent to the neighbours.",
         "Signed edition hunt.", "Watch again with the kids.", "First pressing.", "Replace the worn cover.")
_FORBIDDEN = ("night", "zephyr")


@dataclass
class SeedSummary:
    items: int
    by_type: dict[str, int] = field(default_factory=dict)
    people: int = 0
    genres: int = 0
    links: int = 0
    seasons: int = 0
    zephyr: int = 0
    night: int = 0
    movies_1990s: int = 0
    user_ids: dict[str, int] = field(default_factory=dict)
    sample_isbn13: str | None = None
    sample_ean13: str | None = None
    sample_ids: list[int] = field(default_factory=list)


def _checked(*texts: str) -> None:
    for value in texts:
        low = value.casefold()
        assert not any(word in low for word in _FORBIDDEN), f"{value!r} would pollute a search case"


_checked(*ADJECTIVES, *NOUNS, *FIRST_NAMES, *LAST_NAMES, *PLATFORMS, *STUDIOS, *PUBLISHERS, *LABELS, *NETWORKS,
         *SERIES, *LOCATIONS, *NOTES)


def _title(rng: random.Random, *, zephyr: bool, night: bool) -> str:
    words = {"adj": rng.choice(ADJECTIVES), "noun": rng.choice(NOUNS), "noun2": rng.choice(NOUNS),
             "num": rng.randint(2, 9)}
    if zephyr:
        title = rng.choice(ZEPHYR_PATTERNS).format(**words)
    elif night:
        title = rng.choice(NIGHT_PATTERNS).format(**words)
    else:
        title = rng.choice(PLAIN_PATTERNS).format(**words)
    if not title.startswith("The ") and rng.random() < ARTICLE_SHARE:
        title = rng.choice(("The ", "A ")) + title
    return title


def _barcode(prefix: str, n: int) -> str:
    body = f"{prefix}{n:0{12 - len(prefix)}d}"
    return body + ean.calc_check_digit(body)


def _type_sequence(rng: random.Random, items: int) -> list[str]:
    types: list[str] = []
    for media_type, share in TYPE_SHARES:
        types += [media_type] * round(items * share / 100)
    types = (types + [TYPE_SHARES[0][0]] * items)[:items]
    rng.shuffle(types)
    return types


def _year(rng: random.Random, media_type: str) -> int:
    if media_type == "movie" and rng.random() < 0.025:
        return rng.randint(1990, 1999)
    return rng.randint(1950, 2025)


def _chunks(rows: list[dict[str, Any]], size: int = CHUNK) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _insert(conn: Connection, model: type, rows: list[dict[str, Any]]) -> None:
    table = model.__table__  # type: ignore[attr-defined]
    for chunk in _chunks(rows):
        conn.execute(insert(table), chunk)


def seed(conn: Connection, items: int = ITEMS, *, seed_value: int = SEED, users: dict[str, int] | None = None
         ) -> SeedSummary:
    """Insert the data set into an empty, migrated database (media, people, genres, seasons, my ratings)."""
    rng = random.Random(seed_value)
    summary = SeedSummary(items=items)
    library_id = conn.scalar(select(Library.id).where(Library.is_default.is_(True)))
    if library_id is None:
        made = conn.execute(insert(Library.__table__).values(name="Library", is_default=True))
        library_id = made.inserted_primary_key[0]
    user_ids = users or {u.email: u.id for u in conn.execute(select(User.email, User.id))}
    summary.user_ids = dict(user_ids)
    owners = list(user_ids.values()) or [None]
    my_id = next(iter(user_ids.values()), None)

    # People: a pool with a long tail, so some directors and authors have many items.
    names = [f"{f} {middle}{last}" for f in FIRST_NAMES for middle in ("", "J. ", "M. ", "R. ") for last in LAST_NAMES]
    rng.shuffle(names)
    people_rows = [{"id": i + 1, "name": name, "name_key": name.casefold()} for i, name in enumerate(names)]
    popularity = list(itertools.accumulate(1 / (rank + 10) for rank in range(len(names))))
    people_range = range(len(names))

    def famous() -> int:
        return rng.choices(people_range, cum_weights=popularity)[0]

    genre_names = sorted({g for values in GENRES.values() for g in values})
    genre_id = {name: i + 1 for i, name in enumerate(genre_names)}
    genre_rows = [{"id": genre_id[name], "name": name, "name_key": name.casefold()} for name in genre_names]

    types = _type_sequence(rng, items)
    zephyr = set(rng.sample(range(items), ZEPHYR_TITLES * items // ITEMS))  # 300 at the standard size
    start = datetime(2021, 1, 1, tzinfo=UTC)
    media_rows: list[dict[str, Any]] = []
    link_rows: list[dict[str, Any]] = []
    genre_links: list[dict[str, Any]] = []
    season_rows: list[dict[str, Any]] = []
    state_rows: list[dict[str, Any]] = []
    added_at = start
    for index, media_type in enumerate(types):
        media_id = index + 1
        night = index not in zephyr and rng.random() < NIGHT_SHARE
        title = _title(rng, zephyr=index in zephyr, night=night)
        summary.zephyr += "Zephyr" in title
        summary.night += "Night" in title
        year = _year(rng, media_type)
        summary.movies_1990s += media_type == "movie" and 1990 <= year <= 1999
        formats = rng.sample(FORMATS[media_type], k=1 if rng.random() < 0.7 else 2)
        details: dict[str, Any] = {}
        people: list[tuple[int, str]] = []  # (person index, role)
        isbn13 = ean13 = None
        if media_type in ("movie", "tv_series"):
            people.append((famous(), "director"))
            people += [(p, "cast") for p in rng.sample(range(len(names)), rng.randint(0, 8))]
            if media_type == "movie":
                details = {"studio": rng.choice(STUDIOS)}
                if rng.random() < 0.7:
                    details["resolution"] = rng.choice(RESOLUTIONS)
                if rng.random() < 0.5:
                    ean13 = _barcode("50", media_id)
            else:
                details = {"network": rng.choice(NETWORKS)}
                for season in range(1, rng.randint(1, 8) + 1):
                    episodes = rng.randint(6, 24)
                    available = episodes if rng.random() < 0.8 else rng.randint(0, episodes)
                    season_rows.append({"media_id": media_id, "season_number": season,
                                        "expected_episodes": episodes, "available_episodes": available,
                                        "complete": available == episodes})
        elif media_type == "book":
            people.append((famous(), "author"))
            details = {"publisher": rng.choice(PUBLISHERS), "pages": rng.randint(90, 900)}
            if rng.random() < 0.2:
                details["series"] = rng.choice(SERIES)
            isbn13 = _barcode("978", media_id)
        elif media_type == "game":
            details = {"platform": rng.choice(PLATFORMS)}
        elif media_type == "audio":
            people.append((famous(), "artist"))
            details = {"label": rng.choice(LABELS)}
            if rng.random() < 0.5:
                ean13 = _barcode("40", media_id)
        seen: set[tuple[int, str]] = set()
        person_names: list[str] = []
        for position, (person, role) in enumerate(people):
            if (person, role) in seen:
                continue
            seen.add((person, role))
            person_names.append(names[person])
            link_rows.append({"media_id": media_id, "person_id": person + 1, "role": role, "position": position})
        for genre in rng.sample(GENRES[media_type], k=rng.randint(1, 3)):
            genre_links.append({"media_id": media_id, "genre_id": genre_id[genre]})
        notes = rng.choice(NOTES) if rng.random() < 0.1 else None
        signed_by = names[rng.randrange(len(names))] if rng.random() < 0.01 else None
        added_at += timedelta(seconds=rng.choice((0, 0, 1, 30, 600, 3600)))  # imports add many at one instant
        rating = round(rng.uniform(1, 10), 1) if rng.random() < RATED_SHARE else None
        media_rows.append({
            "id": media_id, "library_id": library_id, "media_type": media_type, "title": title,
            "sort_title": make_sort_title(title), "original_title": None, "year": year, "formats": formats,
            "rating": rating, "isbn13": isbn13, "ean13": ean13, "type_details": details,
            "signed_by": signed_by, "signed_role": "author" if signed_by and media_type == "book" else None,
            "location": rng.choice(LOCATIONS) if rng.random() < 0.4 else None, "notes": notes, "copies": 1,
            "added_by": rng.choice(owners), "created_at": added_at, "updated_at": added_at,
            "search_text": compose_search_text(title=title, people=person_names, details=details, notes=notes,
                                               identifiers=(isbn13, ean13)),
            **derived_columns(media_type, formats, details),
        })
        if my_id is not None and rng.random() < MY_RATED_SHARE:
            state_rows.append({"media_id": media_id, "user_id": my_id, "rating": rng.randint(0, 10),
                               "status": rng.choice(("owned", "finished", "want")), "watchlist": False,
                               "updated_at": added_at})
        summary.by_type[media_type] = summary.by_type.get(media_type, 0) + 1
        if isbn13 and summary.sample_isbn13 is None and index > items // 2:
            summary.sample_isbn13 = isbn13
        if ean13 and summary.sample_ean13 is None and index > items // 2:
            summary.sample_ean13 = ean13

    _insert(conn, Person, people_rows)
    _insert(conn, Genre, genre_rows)
    _insert(conn, Media, media_rows)
    _insert(conn, MediaPerson, link_rows)
    _insert(conn, MediaGenre, genre_links)
    _insert(conn, MediaSeason, season_rows)
    _insert(conn, MediaUserState, state_rows)
    if conn.dialect.name == "postgresql":
        for table in ("people", "genres", "media", "media_seasons", "media_user_state"):
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                              f"(SELECT coalesce(max(id), 1) FROM {table}))"))
    summary.people, summary.genres = len(people_rows), len(genre_rows)
    summary.links, summary.seasons = len(link_rows), len(season_rows)
    summary.sample_ids = [1, items // 2, items]
    assert conn.scalar(select(func.count(Media.id))) >= items
    return summary


def analyze(engine: Any) -> None:
    """Fresh planner statistics (and PostgreSQL's visibility map), as autovacuum or `PRAGMA optimize` keep them.

    PostgreSQL marks a page all-visible only if no open transaction could still miss its rows: a session left idle
    in a transaction from before the seed makes VACUUM leave every page unmarked, and counts then read the whole
    table instead of its index. Callers end their transactions first."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE" if conn.dialect.name == "postgresql" else "ANALYZE")
