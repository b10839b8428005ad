"""Every list query of the library lives here: browse with search, filters, sorts and keyset pages.

A page costs three queries whatever its size (four on PostgreSQL, which first gets its planner settings): the
total for the filter set, the page (each row with a byline, in the same statement), then the viewer's own ratings
of the page's items. On PostgreSQL the total and the page are kept while nothing they read has changed
(services.count_cache), and a view asked again costs one query: its generations, with the viewer's ratings of the
kept rows. The ratings are read apart from the rows so that a member rating an item does not throw away every
kept page. The total decides how the page is found, so that neither a rare nor a common filter or search term
makes the database walk the whole table (the planner trap of ORDER BY … LIMIT):
- a small matching set (≤ SMALL_SET) is collected with its sort keys (a materialised CTE) and sorted;
- a larger one walks the sort's index from the cursor and checks each row: it finds a page within roughly
  per_page × (library size / matches) rows.
Sort keys that may be NULL put their NULLs last in both directions; ties break on id, in the sort's direction,
so keyset pages (an opaque `after=` cursor, no OFFSET) never repeat or skip an item.
"""

from __future__ import annotations

import base64
import binascii
import json
import unicodedata
from collections import namedtuple
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Numeric,
    Select,
    and_,
    any_,
    bindparam,
    cast,
    column,
    exists,
    false,
    func,
    literal,
    null,
    or_,
    select,
    table,
    tuple_,
    union_all,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import ARRAY

from collectz.extensions import db
from collectz.models import (
    Genre,
    Library,
    Media,
    MediaGenre,
    MediaPerson,
    MediaUserState,
    Person,
)
from collectz.models.media_types import LIBRARY_SECTIONS
from collectz.security.permissions import Actor, can_edit_media
from collectz.services import count_cache
from collectz.services.identifiers import parse_lookup
from collectz.services.indexing import FORMAT_SEP, RESOLUTIONS, format_key

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
SMALL_SET = 2000  # at most this many matches: collect them, then sort (see the module docstring)
MIN_FTS_TERM = 3  # the trigram index needs three characters; shorter words fall back to LIKE
MAX_TERMS = 8
VIEWS = ("grid", "table")


@dataclass(frozen=True)
class Sort:
    label: str
    default_dir: str
    nullable: bool


SORTS: dict[str, Sort] = {
    "title": Sort("Title", "asc", nullable=False),
    "year": Sort("Year", "desc", nullable=True),
    "format": Sort("Format", "asc", nullable=True),
    "added": Sort("Date added", "desc", nullable=False),
    "rating": Sort("Rating", "desc", nullable=True),
    "my_rating": Sort("My rating", "desc", nullable=True),
}

# Who an item is "by" in the list, in order of preference.
BYLINE_ROLES = ("director", "author", "artist", "developer", "writer", "creator")
# The people filters and the roles each matches.
PEOPLE_FILTERS: dict[str, tuple[str, ...]] = {
    "director": ("director",),
    "cast": ("cast",),
    "author": ("author", "writer"),
}
FILTER_LABELS = {
    "format": "Format", "year_from": "From year", "year_to": "To year", "genre": "Genre", "director": "Director",
    "cast": "Cast", "author": "Author", "platform": "Platform", "resolution": "Resolution",
    "rating_min": "Rating at least", "rating_max": "Rating at most", "my_rating_min": "My rating at least",
    "my_rating_max": "My rating at most", "location": "Location", "signed": "Signed only",
}
# Suggestions for the format filter (any owned format can be typed).
COMMON_FORMATS = ("4K UHD", "Blu-ray", "DVD", "VHS", "Digital", "Hardcover", "Paperback", "eBook", "Audiobook",
                  "CD", "Vinyl", "Cassette", "Cartridge", "Disc")


def _text(raw: str | None, limit: int = 200) -> str:
    return " ".join((raw or "").split())[:limit]


def _int(raw: str | None, low: int, high: int) -> int | None:
    try:
        value = int(str(raw).strip())
    except (TypeError, ValueError):
        return None
    return value if low <= value <= high else None


def _float(raw: str | None, low: float, high: float) -> float | None:
    try:
        value = float(str(raw).strip())
    except (TypeError, ValueError):
        return None
    return value if low <= value <= high and value == value else None


def _is_set(value: Any) -> bool:
    return value is not None and value != "" and value is not False


@dataclass(frozen=True)
class BrowseParams:
    """What a library view shows: section, search, filters, sort, cursor, page size. Parsed leniently:
    a value that makes no sense is ignored (and so left out of the page's links)."""

    section: str = "all"
    q: str = ""
    format: str = ""
    year_from: int | None = None
    year_to: int | None = None
    genre: str = ""
    director: str = ""
    cast: str = ""
    author: str = ""
    platform: str = ""
    resolution: str = ""
    rating_min: float | None = None
    rating_max: float | None = None
    my_rating_min: int | None = None
    my_rating_max: int | None = None
    location: str = ""
    signed: bool = False
    sort: str = "title"
    dir: str = "asc"
    per_page: int = DEFAULT_PER_PAGE
    after: str = ""

    @property
    def filters_my_ratings(self) -> bool:
        """Whether the filter set reads the viewer's own ratings (media_user_state)."""
        return self.my_rating_min is not None or self.my_rating_max is not None

    @property
    def reads_my_ratings(self) -> bool:
        """Whether the page's rows (which, in which order) depend on the viewer's own ratings."""
        return self.filters_my_ratings or self.sort == "my_rating"

    @classmethod
    def from_args(cls, section: str, args: Mapping[str, str]) -> BrowseParams:
        sort = args.get("sort", "title")
        sort = sort if sort in SORTS else "title"
        direction = args.get("dir", "")
        direction = direction if direction in ("asc", "desc") else SORTS[sort].default_dir
        resolution = args.get("resolution", "")
        return cls(
            section=section if section in LIBRARY_SECTIONS else "all",
            q=_text(args.get("q")),
            format=_text(args.get("format"), 100),
            year_from=_int(args.get("year_from"), 1000, 3000),
            year_to=_int(args.get("year_to"), 1000, 3000),
            genre=_text(args.get("genre"), 100).casefold(),
            director=_text(args.get("director"), 100),
            cast=_text(args.get("cast"), 100),
            author=_text(args.get("author"), 100),
            platform=_text(args.get("platform"), 100),
            resolution=resolution if resolution in RESOLUTIONS else "",
            rating_min=_float(args.get("rating_min"), 0, 10),
            rating_max=_float(args.get("rating_max"), 0, 10),
            my_rating_min=_int(args.get("my_rating_min"), 0, 10),
            my_rating_max=_int(args.get("my_rating_max"), 0, 10),
            location=_text(args.get("location"), 255),
            signed=args.get("signed", "") in ("1", "on", "true", "yes"),
            sort=sort,
            dir=direction,
            per_page=min(_int(args.get("per_page"), 1, 1_000_000) or DEFAULT_PER_PAGE, MAX_PER_PAGE),
            after=_text(args.get("after"), 1000),
        )

    @property
    def filter_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in fields(self) if f.name not in ("section", "q", "sort", "dir", "per_page",
                                                                      "after"))

    @property
    def filtered(self) -> bool:
        """Whether any filter (not search or sort) is set."""
        return any(_is_set(getattr(self, name)) for name in self.filter_names)

    def args(self, **changes: Any) -> dict[str, str]:
        """The query-string arguments of this view (defaults left out), with changes applied."""
        view = replace(self, **changes) if changes else self
        out: dict[str, str] = {}
        for f in fields(view):
            value = getattr(view, f.name)
            if f.name == "section" or not _is_set(value):
                continue
            if f.name == "dir" and value == SORTS[view.sort].default_dir:
                continue
            if (f.name == "sort" and value == "title") or (f.name == "per_page" and value == DEFAULT_PER_PAGE):
                continue
            out[f.name] = "1" if value is True else (f"{value:g}" if isinstance(value, float) else str(value))
        return out

    def active_filters(self) -> list[tuple[str, str, str]]:
        """(name, label, value as shown) of each filter in use; the value is empty for a yes/no filter."""
        out = []
        for name in self.filter_names:
            value = getattr(self, name)
            if _is_set(value):
                shown = "" if value is True else (f"{value:g}" if isinstance(value, float) else str(value))
                out.append((name, FILTER_LABELS[name], shown))
        return out

    def without(self, name: str) -> dict[str, str]:
        """Arguments of this view with one filter removed (and the cursor reset)."""
        default = BrowseParams.__dataclass_fields__[name].default
        return self.args(**{name: default, "after": ""})


@dataclass
class BrowsePage:
    params: BrowseParams
    rows: list[Any]
    total: int
    next_cursor: str | None = None
    strategy: str = "walk"
    extra: dict[str, Any] = field(default_factory=dict)
    editable: frozenset[int] = frozenset()  # the ids of the rows the viewer may edit

    @property
    def has_next(self) -> bool:
        return self.next_cursor is not None


# --- cursors ------------------------------------------------------------------------------------------

def encode_cursor(params: BrowseParams, key: Any, media_id: int) -> str:
    """An opaque `after=` token: the sort, its direction and the last row's (key, id)."""
    if isinstance(key, datetime):
        key = {"t": key.isoformat()}
    raw = json.dumps([params.sort, params.dir, key, media_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(params: BrowseParams) -> tuple[Any, int] | None:
    """The (key, id) a page starts after, or None for the first page (an unreadable token is ignored)."""
    if not params.after:
        return None
    try:
        raw = base64.urlsafe_b64decode(params.after + "=" * (-len(params.after) % 4))
        sort, direction, key, media_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        return None
    if sort != params.sort or direction != params.dir or not isinstance(media_id, int) or isinstance(media_id, bool):
        return None
    expected = {"title": str, "format": str, "year": int, "my_rating": int, "rating": (int, float),
                "added": dict}[sort]
    if key is None:
        return (None, media_id) if SORTS[sort].nullable else None
    if isinstance(key, bool) or not isinstance(key, expected):
        return None
    if sort == "added":
        try:
            key = datetime.fromisoformat(str(key.get("t")))
        except ValueError:
            return None
    return key, media_id


# --- conditions ---------------------------------------------------------------------------------------

def _value(value: Any, col: Any) -> Any:
    """A bound value of the column's type. A decimal column gets an explicit cast: compared with a float
    parameter PostgreSQL would convert the column instead, and no index could answer."""
    bound = literal(value, col.type)
    return cast(bound, col.type) if isinstance(col.type, Numeric) else bound


_DEFAULT_LIBRARY = select(Library.id).where(Library.is_default.is_(True)).limit(1).scalar_subquery()


def _like_escape(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_terms(q: str) -> list[str]:
    """The words of a search, lower-cased like media.search_text (each must occur)."""
    words: list[str] = []
    for word in q.casefold().split():
        if word not in words:
            words.append(word[:100])
    return words[:MAX_TERMS]


class _Columns:
    """Columns as the conditions see them, written so that the planner drives a query by the right index.

    - When a SQLite page walks a sort index, every other condition is wrapped (`col + 0`, `col || ''`) so that it
      cannot choose the index: SQLite's planner ignores LIMIT and would rather use a filter's index and sort
      thousands of rows to keep fifty. PostgreSQL weighs LIMIT itself (and would misjudge wrapped conditions),
      so there columns stay as written.
    - Sets of ids from other tables (genre, people, my rating, SQLite's full-text matches) drive a query only when
      no condition on the item's own indexed columns does: probing thousands of items one by one to check their
      type or year costs more than scanning that index and looking each id up in the (hashed) set.
    """

    def __init__(self, driving: bool, keep: Any = None, ids_drive: bool = True):
        sqlite = db.session.get_bind().dialect.name == "sqlite"
        self.driving = driving or not sqlite
        self.keep = keep  # the sort's own column: a range on it is also the walk's start
        self.ids_drive = ids_drive and (driving or not sqlite)
        self.walking = not driving

    def __call__(self, col: Any) -> Any:
        if self.driving or col is self.keep:
            return col
        return col + 0 if isinstance(col.type, (Integer, Numeric)) else col.concat("")

    def id(self) -> Any:
        """media.id, as the left side of `IN (a set of ids)`."""
        return Media.id if self.ids_drive else Media.id + 0

    def in_set(self, ids: Select[Any], media_id: Any) -> ColumnElement[bool]:
        """The item is in a set of ids from another table. A walk checks a few hundred items per page, so there
        each is looked up (EXISTS … = media.id) instead of first gathering the whole set."""
        if self.walking:
            return exists(ids.where(media_id == Media.id))
        return self.id().in_(ids)


def _search_condition(q: str, c: _Columns) -> ColumnElement[bool]:
    """Every word of q occurs in the item's search text (by index), or q is the item's ISBN/EAN/UPC."""
    words = search_terms(q)
    dialect = db.session.get_bind().dialect.name
    conditions: list[ColumnElement[bool]] = []
    if words and all(len(w) < MIN_FTS_TERM for w in words):
        # Too short for the trigram indexes: match the start of the title (sort_title's index) instead.
        conditions.append(_title_prefix(" ".join(words), c))
        words = []
    fts_words = [w for w in words if len(w) >= MIN_FTS_TERM] if dialect == "sqlite" else []
    if fts_words:
        fts = table("media_fts", column("rowid"))
        match = " ".join('"' + w.replace('"', '""') + '"' for w in fts_words)
        conditions.append(c.id().in_(select(fts.c.rowid).where(sql_text("media_fts MATCH :match").bindparams(
            match=match))))
    for word in words:
        if word not in fts_words:
            conditions.append(c(Media.search_text).like(f"%{_like_escape(word)}%", escape="\\"))
    text_match = and_(*conditions) if conditions else false()
    lookup = parse_lookup(q.strip())
    if lookup is None:
        return text_match
    by_id = [c(Media.isbn13) == lookup.isbn13] if lookup.isbn13 else []
    by_id += [c(Media.ean13) == lookup.ean13] if lookup.ean13 else []
    return or_(text_match, *by_id)


def _title_prefix(prefix: str, c: _Columns) -> ColumnElement[bool]:
    """Titles (articles ignored) starting with prefix: an index range, checked exactly by LIKE."""
    upper = prefix[:-1] + chr(min(ord(prefix[-1]) + 1, 0x10FFFF))
    col = c(Media.sort_title)
    return and_(col >= prefix, col < upper, Media.sort_title.like(f"{_like_escape(prefix)}%", escape="\\"))


def name_key(name: str) -> str:
    """A name as people.name_key keeps it: Unicode-normalised, single spaces, case folded."""
    return " ".join(unicodedata.normalize("NFKC", name).split()).casefold()


def _people_condition(roles: Sequence[str], name: str, c: _Columns) -> ColumnElement[bool]:
    """Items crediting, in one of these roles, anyone whose name contains `name` (pg_trgm answers it on
    PostgreSQL; SQLite scans the people table, which is far smaller than the catalog)."""
    named = Person.name_key.like(f"%{_like_escape(name_key(name))}%", escape="\\")
    if c.walking:  # per walked item: its few credits, each person by primary key
        return c.in_set(select(MediaPerson.media_id).join(Person, Person.id == MediaPerson.person_id)
                        .where(MediaPerson.role.in_(roles), named), MediaPerson.media_id)
    people = select(Person.id).where(named)
    return c.in_set(select(MediaPerson.media_id).where(MediaPerson.role.in_(roles),
                                                       MediaPerson.person_id.in_(people)), MediaPerson.media_id)


def _conditions(viewer: int, p: BrowseParams, *, walk: bool = False) -> list[ColumnElement[bool]]:
    """The filter set as SQL conditions; `walk`: only the library (and type, where the sort's index starts
    with it) may choose the index."""
    types = LIBRARY_SECTIONS[p.section][1]
    own_indexed = bool(types) or p.platform or p.resolution or p.location or p.signed or any(
        v is not None for v in (p.year_from, p.year_to, p.rating_min, p.rating_max))
    c = _Columns(driving=not walk, keep=_SORT_COLUMNS.get(p.sort), ids_drive=not own_indexed)
    conds: list[ColumnElement[bool]] = [Media.library_id == _DEFAULT_LIBRARY]
    if len(types) == 1:
        type_col = Media.media_type if not walk or p.sort in ("title", "year") else c(Media.media_type)
        conds.append(type_col == types[0])
    elif types:
        conds.append(c(Media.media_type).in_(types))
    if p.q:
        conds.append(_search_condition(p.q, c))
    if p.format:
        key = format_key(p.format)
        conds.append(c(Media.formats_key).like(f"%{FORMAT_SEP}{_like_escape(key)}{FORMAT_SEP}%", escape="\\"))
    if p.year_from is not None:
        conds.append(c(Media.year) >= p.year_from)
    if p.year_to is not None:
        conds.append(c(Media.year) <= p.year_to)
    if p.genre:
        genre = select(Genre.id).where(Genre.name_key == p.genre).scalar_subquery()
        conds.append(c.in_set(select(MediaGenre.media_id).where(MediaGenre.genre_id == genre), MediaGenre.media_id))
    for name, roles in PEOPLE_FILTERS.items():
        if getattr(p, name):
            conds.append(_people_condition(roles, getattr(p, name), c))
    if p.platform:
        conds.append(c(Media.platform) == p.platform)
    if p.resolution:
        conds.append(c(Media.resolution) == p.resolution)
    if p.rating_min is not None:
        conds.append(c(Media.rating) >= _value(p.rating_min, Media.rating))
    if p.rating_max is not None:
        conds.append(c(Media.rating) <= _value(p.rating_max, Media.rating))
    if p.filters_my_ratings:
        mine = select(MediaUserState.media_id).where(MediaUserState.user_id == viewer,
                                                      MediaUserState.rating.is_not(None))
        if p.my_rating_min is not None:
            mine = mine.where(MediaUserState.rating >= p.my_rating_min)
        if p.my_rating_max is not None:
            mine = mine.where(MediaUserState.rating <= p.my_rating_max)
        conds.append(c.in_set(mine, MediaUserState.media_id))
    if p.location:
        conds.append(c(Media.location) == p.location)
    if p.signed:
        conds.append(c(Media.signed_by) > "")  # "signed_by IS NOT NULL", in a form the index can answer
    return conds


# --- the page -----------------------------------------------------------------------------------------

# media_user_state under an alias, for a sort by the viewer's rating: the viewer's own row is joined on (media_id,
# user_id). Made once: an alias's columns are set up when first read, which costs more than the rest of a page's
# statement.
_MINE_KEY = MediaUserState.__table__.alias("mine_key")


_SORT_COLUMNS = {"title": Media.sort_title, "year": Media.year, "format": Media.formats_key,
                 "added": Media.created_at, "rating": Media.rating}


def _sort_key(p: BrowseParams, mine: Any) -> ColumnElement[Any]:
    return {
        "title": Media.sort_title,
        "year": Media.year,
        "format": Media.formats_key,
        "added": Media.created_at,
        "rating": Media.rating,
        "my_rating": mine.c.rating,
    }[p.sort]


def _join_mine(stmt: Select[Any], viewer: int, mine: Any) -> Select[Any]:
    return stmt.join(mine, and_(mine.c.media_id == Media.id, mine.c.user_id == viewer))


def _after(key: ColumnElement[Any], cursor: tuple[Any, int], descending: bool) -> ColumnElement[bool]:
    pair, bound = tuple_(key, Media.id), tuple_(_value(cursor[0], key), literal(cursor[1]))
    return pair < bound if descending else pair > bound


def _walk(viewer: int, p: BrowseParams, conds: list[ColumnElement[bool]], cursor: tuple[Any, int] | None,
          limit: int) -> Select[Any]:
    """(seg, key, id) of the next rows, walking the sort's index: non-NULL keys, then NULL keys by id."""
    mine = _MINE_KEY
    key = _sort_key(p, mine)
    desc = p.dir == "desc"
    order_id = Media.id.desc() if desc else Media.id.asc()
    segments = []
    if cursor is None or cursor[0] is not None:
        first = select(literal(0, Integer).label("seg"), key.label("key"), Media.id.label("id")).select_from(
            Media).where(*conds)
        if p.sort == "my_rating":
            first = _join_mine(first, viewer, mine)
        if SORTS[p.sort].nullable:
            first = first.where(key.is_not(None))
        if cursor is not None:
            first = first.where(_after(key, cursor, desc))
        segments.append(first.order_by(key.desc() if desc else key.asc(), order_id).limit(limit))
    if SORTS[p.sort].nullable:
        second = select(literal(1, Integer).label("seg"), cast(null(), key.type).label("key"),
                        Media.id.label("id")).select_from(Media).where(*conds)
        if p.sort == "my_rating":
            second = second.where(~exists().where(mine.c.media_id == Media.id, mine.c.user_id == viewer,
                                                  mine.c.rating.is_not(None)))
        else:
            second = second.where(key.is_(None))
        if cursor is not None and cursor[0] is None:
            second = second.where(Media.id < cursor[1] if desc else Media.id > cursor[1])
        segments.append(second.order_by(order_id).limit(limit))
    if len(segments) == 1:
        return segments[0]
    both = union_all(*(s.subquery().select() for s in segments)).subquery("segments")
    return select(both.c.seg, both.c.key, both.c.id).order_by(
        both.c.seg, both.c.key.desc() if desc else both.c.key.asc(),
        both.c.id.desc() if desc else both.c.id.asc()).limit(limit)


def _collect(viewer: int, p: BrowseParams, conds: list[ColumnElement[bool]], cursor: tuple[Any, int] | None,
             limit: int) -> Select[Any]:
    """(seg, key, id) of the next rows of a small matching set. The matches are collected first with their sort
    keys (materialised, so the planner cannot turn them into a walk of the sort index); a sort by the viewer's own
    rating looks each match's key up in a second step. Then the keys are sorted."""
    desc = p.dir == "desc"
    if p.sort == "my_rating":
        ids = select(Media.id.label("id")).where(*conds).cte("matching").prefix_with("MATERIALIZED")
        mine = _MINE_KEY
        lookup = select(mine.c.rating).where(mine.c.media_id == ids.c.id, mine.c.user_id == viewer)
        key_type = lookup.selected_columns[0].type
        keyed = select(ids.c.id, lookup.scalar_subquery().label("key")).cte("keyed").prefix_with("MATERIALIZED")
    else:  # the item's own column: read with the row that matched (looking it up again by id cost as much again)
        key_type = _SORT_COLUMNS[p.sort].type
        keyed = select(Media.id.label("id"), _SORT_COLUMNS[p.sort].label("key")).where(*conds).cte(
            "keyed").prefix_with("MATERIALIZED")
    mkey, mid = keyed.c.key, keyed.c.id
    nullable = SORTS[p.sort].nullable
    seg = cast(mkey.is_(None), Integer) if nullable else literal(0, Integer)
    stmt = select(seg.label("seg"), mkey, mid)
    if cursor is not None:
        if cursor[0] is None:
            stmt = stmt.where(mkey.is_(None), mid < cursor[1] if desc else mid > cursor[1])
        else:
            bound = tuple_(_value(cursor[0], _Typed(key_type)), literal(cursor[1]))
            after = tuple_(mkey, mid) < bound if desc else tuple_(mkey, mid) > bound
            stmt = stmt.where(or_(and_(mkey.is_not(None), after), mkey.is_(None)) if nullable else after)
    return stmt.order_by(seg, mkey.desc() if desc else mkey.asc(), mid.desc() if desc else mid.asc()).limit(limit)


@dataclass(frozen=True)
class _Typed:
    type: Any


_ROW_COLUMNS = (Media.id, Media.title, Media.media_type, Media.year, Media.formats, Media.rating, Media.added_by,
                Media.cover_key, Media.thumb_key, Media.signed_by, Media.location, Media.created_at)
_BYLINE = (
    select(Person.name)
    .join(MediaPerson, MediaPerson.person_id == Person.id)
    .where(MediaPerson.media_id == Media.id, MediaPerson.role.in_(BYLINE_ROLES))
    .order_by(MediaPerson.position)
    .limit(1)
    .correlate(Media)
    .scalar_subquery()
    .label("byline")
)


# A page's row as the list shows it. Rows become plain named tuples: a template reads some twenty fields of each of
# fifty rows, and a field of a SQLAlchemy Row costs several times more to read. The viewer's own rating comes last,
# from its own query (see _ratings_statement).
ListRow = namedtuple("ListRow", [c.key for c in _ROW_COLUMNS] + ["byline", "seg", "key", "my_rating"])
_FORMATS = ListRow._fields.index("formats")  # a JSON list in the table, a tuple in a row


def _rows(keys: Select[Any], p: BrowseParams) -> Select[Any]:
    """The page's rows: display columns and a byline, in the keys' order (the same for every viewer)."""
    page = keys.subquery("page")
    desc = p.dir == "desc"
    stmt = select(*_ROW_COLUMNS, _BYLINE, page.c.seg, page.c.key).select_from(Media).join(page, page.c.id == Media.id)
    return stmt.order_by(page.c.seg, page.c.key.desc() if desc else page.c.key.asc(),
                         page.c.id.desc() if desc else page.c.id.asc())


# The same, as a column of the statement that reads the generations (PostgreSQL): {media id: rating} as JSON.
_RATINGS_OF_IDS = ("(SELECT json_object_agg(media_id, rating) FROM media_user_state "
                   "WHERE user_id = :viewer AND media_id = ANY(:ids) AND rating IS NOT NULL)")


@lru_cache(maxsize=4)
def _ratings_statement(dialect: str) -> Select[Any]:
    """The viewer's ratings of the page's items (`viewer`, `ids`): by (media_id, user_id), the state's unique key."""
    if dialect == "postgresql":  # one array parameter, the same statement for every page size
        among = MediaUserState.media_id == any_(bindparam("ids", type_=ARRAY(Integer)))
    else:
        among = MediaUserState.media_id.in_(bindparam("ids", expanding=True))
    return select(MediaUserState.media_id, MediaUserState.rating).where(
        among, MediaUserState.user_id == bindparam("viewer"), MediaUserState.rating.is_not(None))


# A view's statements, kept per process: the same view asked again (the first page of a section, a filter
# followed from a link) skips building them and SQLAlchemy's key for its compiled SQL, about half of what a page
# costs this process besides the database. Bound values are part of a statement, so the key is everything it
# is built from: the dialect (the builders read it from the session), the viewer and the view.
MAX_STATEMENTS = 128


@lru_cache(maxsize=MAX_STATEMENTS)
def _count_statement(dialect: str, viewer: int, filters: BrowseParams) -> Select[Any]:
    return select(func.count()).select_from(Media).where(*_conditions(viewer, filters))


@lru_cache(maxsize=MAX_STATEMENTS)
def _page_statement(dialect: str, viewer: int, params: BrowseParams, strategy: str) -> Select[Any]:
    cursor = decode_cursor(params)
    limit = params.per_page + 1
    if strategy == "collect":
        keys = _collect(viewer, params, _conditions(viewer, params), cursor, limit)
    else:
        keys = _walk(viewer, params, _conditions(viewer, params, walk=True), cursor, limit)
    return _rows(keys, params)


def browse(actor: Actor, params: BrowseParams, *, strategy: str = "auto", small_set: int = SMALL_SET,
           keep: bool = True) -> BrowsePage:
    """One page of the library for this view: rows, the total for its filter set and the next cursor.

    `auto`: up to `small_set` matches are collected and sorted, more are found by walking the sort's index;
    `collect` and `walk` force one way (both give the same pages). `keep`: the page may be kept for the next
    request of the same view (not for a walk through every page, such as an export's)."""
    dialect = db.session.get_bind().dialect.name
    key = ("page", dialect, actor.id, params, strategy)
    kept = count_cache.kept_page(key) if keep else None  # (stamp, (total, strategy, rows)): PostgreSQL only
    if kept is not None:  # the generations and the viewer's ratings of the kept rows, in one round trip
        generations, rated = count_cache.tune_read_and(_RATINGS_OF_IDS, viewer=actor.id,
                                                       ids=[row[0] for row in kept[1][2]])
    else:
        generations, rated = count_cache.tune_and_read(), None  # PostgreSQL: planner settings, generations
    reads_user_state = params.reads_my_ratings
    if kept is not None and generations is not None and kept[0] == count_cache.stamp(
            generations, reads_user_state=reads_user_state):
        total, strategy, found = kept[1]
        ratings = {int(media_id): rating for media_id, rating in (rated or {}).items()}
    else:
        # The filter set alone decides the total: a view's other pages and sorts share one statement.
        filters = replace(params, sort="title", dir="asc", per_page=DEFAULT_PER_PAGE, after="")
        total = count_cache.count(_count_statement(dialect, actor.id, filters), generations,
                                  reads_user_state=params.filters_my_ratings)
        if strategy == "auto":
            strategy = "collect" if total <= small_set else "walk"
        if total == 0:
            return BrowsePage(params, [], 0, None, strategy)
        # Immutable (a kept page is shared by the requests that read it): formats become a tuple.
        found = tuple((*row[:_FORMATS], tuple(row[_FORMATS] or ()), *row[_FORMATS + 1:])
                      for row in db.session.execute(_page_statement(dialect, actor.id, params, strategy)))
        if keep:
            count_cache.keep_page(key, generations, reads_user_state=reads_user_state, page=(total, strategy, found))
        ratings = dict(db.session.execute(_ratings_statement(dialect), {"viewer": actor.id,
                                                                         "ids": [row[0] for row in found]}).all())
    rows = [ListRow._make((*row, ratings.get(row[0]))) for row in found]
    next_cursor = None
    if len(rows) > params.per_page:
        rows = rows[: params.per_page]
        last = rows[-1]
        next_cursor = encode_cursor(params, None if last.seg else last.key, last.id)
    editable = frozenset(row.id for row in rows if can_edit_media(actor, row))
    return BrowsePage(params, rows, total, next_cursor, strategy, editable=editable)


# --- what the filter panel offers ---------------------------------------------------------------------

@dataclass
class FilterOptions:
    genres: list[tuple[str, str]]
    platforms: list[str]
    locations: list[str]
    formats: tuple[str, ...] = COMMON_FORMATS
    resolutions: tuple[str, ...] = RESOLUTIONS
    sorts: dict[str, Sort] = field(default_factory=lambda: SORTS)


def filter_options() -> FilterOptions:
    """Choices for the filter panel: genres, platforms and locations in use (two queries)."""
    genres = [(key, name) for key, name in db.session.execute(select(Genre.name_key, Genre.name).order_by(
        Genre.name_key))]
    library = _DEFAULT_LIBRARY
    platforms = select(literal("platform").label("kind"), Media.platform.label("value")).where(
        Media.library_id == library, Media.platform.is_not(None)).distinct()
    locations = select(literal("location").label("kind"), Media.location.label("value")).where(
        Media.library_id == library, Media.location.is_not(None)).distinct()
    values: dict[str, list[str]] = {"platform": [], "location": []}
    for kind, value in db.session.execute(union_all(platforms, locations)):
        values[kind].append(value)
    return FilterOptions(genres, sorted(values["platform"], key=str.casefold),
                         sorted(values["location"], key=str.casefold))
