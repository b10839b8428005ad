"""People and genres: one row per normalised name, shared by every item that names them."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from collectz.extensions import db
from collectz.models import Genre, Media, MediaPerson, Person
from collectz.services.bulk_rows import any_of, matching

PERSON_NAME_MAX = 255
GENRE_NAME_MAX = 100

_SPACE = re.compile(r"\s+")

Named = TypeVar("Named", Person, Genre)


@dataclass(frozen=True)
class Credit:
    """A person on an item: their name, role and (for cast) the character; None keeps a known character."""

    name: str
    role: str
    character: str | None = None


@lru_cache(maxsize=65536)  # imports ask for the same few thousand names again and again
def clean_name(name: str) -> str:
    """The name as shown: Unicode-normalised, single spaces, trimmed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", name or "")).strip()


@lru_cache(maxsize=65536)
def name_key(name: str, max_length: int = PERSON_NAME_MAX) -> str:
    """The key two spellings of one name share: case and spacing do not matter."""
    return clean_name(name)[:max_length].casefold()[:max_length]


def _get_or_create(model: type[Named], names: Iterable[str], max_length: int, light: bool = False) -> dict[str, Any]:
    """Rows for these names by key, creating the missing ones (safe against a concurrent insert). `light`: plain
    (id, name, name_key) rows instead of ORM objects (imports, thousands at a time, need only the ids)."""
    wanted: dict[str, str] = {}
    for name in names:
        shown = clean_name(name)[:max_length]
        if shown:
            wanted.setdefault(name_key(shown, max_length), shown)
    if not wanted:
        return {}
    def load(keys: Iterable[str]) -> Iterable[Any]:
        if light:
            return db.session.execute(named_rows(model, list(keys)))
        return db.session.scalars(select(model).where(any_of(model.name_key, keys)))

    found = {row.name_key: row for row in load(wanted)}
    missing = [{"name": wanted[key], "name_key": key} for key in wanted if key not in found]
    if missing:
        insert = pg_insert if db.session.get_bind().dialect.name == "postgresql" else sqlite_insert
        db.session.execute(insert(model).values(missing).on_conflict_do_nothing(index_elements=["name_key"]))
        new_keys = [row["name_key"] for row in missing]
        found.update((row.name_key, row) for row in load(new_keys))
    return found


def named_rows(model: type[Named], keys: list[str]) -> Any:
    """(id, name, name_key) of the rows with these keys: an import's thousands of names, each one probe of the
    name_key index (a whole-table scan on PostgreSQL otherwise: see bulk_rows.each_key)."""
    return matching(select(model.id, model.name, model.name_key), model.name_key, keys)


def get_or_create_people(names: Iterable[str], *, light: bool = False) -> dict[str, Person]:
    """Person rows by name key, created when new (`light`: (id, name, name_key) rows, not ORM objects)."""
    return _get_or_create(Person, names, PERSON_NAME_MAX, light)


def get_or_create_genres(names: Iterable[str], *, light: bool = False) -> dict[str, Genre]:
    """Genre rows by name key, created when new (`light`: (id, name, name_key) rows, not ORM objects)."""
    return _get_or_create(Genre, names, GENRE_NAME_MAX, light)


def ordered_credits(credits: Iterable[Credit], people: dict[str, Person]) -> list[tuple[Person, Credit, int]]:
    """(person, credit, position) for each credit whose person is known: a person once per role, positions
    counting up per role in the order given."""
    positions: dict[str, int] = {}
    seen: set[tuple[int, str]] = set()
    result: list[tuple[Person, Credit, int]] = []
    for credit in credits:
        person = people.get(name_key(credit.name))
        if person is None or (person.id, credit.role) in seen:
            continue
        seen.add((person.id, credit.role))
        result.append((person, credit, positions.get(credit.role, 0)))
        positions[credit.role] = positions.get(credit.role, 0) + 1
    return result


def ordered_genres(names: Iterable[str], genres: dict[str, Genre]) -> list[Genre]:
    """The genres of these names that are known, in the order given, each once."""
    ordered: list[Genre] = []
    seen: set[int] = set()  # by id: the rows may be plain result rows, which compare slowly
    for name in names:
        genre = genres.get(name_key(name, GENRE_NAME_MAX))
        if genre is not None and genre.id not in seen:
            seen.add(genre.id)
            ordered.append(genre)
    return ordered


def set_people(media: Media, credits: Sequence[Credit]) -> None:
    """Make these the item's people: positions count up per role; a person appears once per role.

    Rows that stay are updated in place, so a character recorded earlier survives an edit that does not name one.
    """
    people = get_or_create_people(c.name for c in credits)
    existing = {(mp.person_id, mp.role): mp for mp in media.people}
    result: list[MediaPerson] = []
    for person, credit, position in ordered_credits(credits, people):
        row = existing.get((person.id, credit.role)) or MediaPerson(person=person, role=credit.role)
        row.position = position
        if credit.character is not None:
            row.character = clean_name(credit.character) or None
        result.append(row)
    media.people = result


def set_genres(media: Media, names: Sequence[str]) -> None:
    """Make these the item's genres (in the order given, each once)."""
    media.genres = ordered_genres(names, get_or_create_genres(names))


def people_by_role(media: Media) -> dict[str, list[str]]:
    """The item's people as {role: [names in order]}."""
    grouped: dict[str, list[tuple[int, str]]] = {}
    for mp in media.people:
        grouped.setdefault(mp.role, []).append((mp.position, mp.person.name))
    return {role: [name for _pos, name in sorted(names)] for role, names in grouped.items()}
