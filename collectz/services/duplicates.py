"""Likely duplicates: items sharing an identifier, or a normalised title with a different year or format.

A group is one reason (kind) and one key. The list of groups is a UNION of GROUP BY ... HAVING queries on
indexed columns, paged in SQL with its total alongside; the items of one page's groups come from one more
query, so a page costs two queries however many groups or items it shows.

Same title, year and formats is *not* a title duplicate: the household may keep several entries on purpose
(each member's own copy). Such items are listed only when they also share an identifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, cast, func, literal, or_, select, tuple_, union_all
from sqlalchemy.orm import defer

from collectz.extensions import db
from collectz.models import Media, User
from collectz.security.permissions import Actor, can_edit_media
from collectz.services.pagination import Page

KINDS: dict[str, str] = {
    "isbn13": "Same ISBN-13",
    "ean13": "Same EAN-13 / UPC",
    "asin": "Same ASIN",
    "tmdb": "Same TMDB id",
    "title": "Same title, different year or format",
}
IDENTIFIER_COLUMNS = ("isbn13", "ean13", "asin")
PER_PAGE = 20


@dataclass
class Candidate:
    media: Media
    added_by_name: str | None
    editable: bool


@dataclass
class DuplicateGroup:
    kind: str
    key: tuple[str, ...]
    items: list[Candidate] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return KINDS[self.kind]

    @property
    def key_label(self) -> str:
        """What the group's items share, as shown to the member."""
        if self.kind == "tmdb":
            return f"{self.key[0]} {self.key[1]}"
        if self.kind == "title":
            return self.key[2]
        return self.key[0]

    @property
    def editable(self) -> list[Candidate]:
        return [c for c in self.items if c.editable]


class DuplicatesPage(Page["DuplicateGroup"]):
    @property
    def groups(self) -> list[DuplicateGroup]:
        return self.items


def _group_keys() -> Any:
    """(rank, kind, k1, k2, k3) for every group; keys as text so the branches can be united."""
    parts: list[Select[Any]] = []
    for rank, name in enumerate(IDENTIFIER_COLUMNS):
        column = getattr(Media, name)
        parts.append(
            select(literal(rank).label("rank"), literal(name).label("kind"), column.label("k1"),
                   cast(literal(None), String).label("k2"), cast(literal(None), String).label("k3"))
            .where(column.is_not(None)).group_by(column).having(func.count() > 1)
        )
    parts.append(
        select(literal(3).label("rank"), literal("tmdb").label("kind"), Media.tmdb_media_type.label("k1"),
               cast(Media.tmdb_id, String).label("k2"), cast(literal(None), String).label("k3"))
        .where(Media.tmdb_id.is_not(None), Media.tmdb_media_type.is_not(None))
        .group_by(Media.tmdb_media_type, Media.tmdb_id).having(func.count() > 1)
    )
    # Titles in two steps: groups of more than one item come from the browse index alone (cheap); only
    # their rows are then read to see whether year or formats differ. A missing year differs from a year.
    title_key = (Media.library_id, Media.media_type, Media.sort_title)
    shared = select(*title_key).group_by(*title_key).having(func.count() > 1).subquery("shared_titles")
    year = func.coalesce(Media.year, -1)
    formats = cast(Media.formats, String)
    parts.append(
        select(literal(4).label("rank"), literal("title").label("kind"), cast(Media.library_id, String).label("k1"),
               Media.media_type.label("k2"), Media.sort_title.label("k3"))
        .join(shared, and_(*[column == shared.c[column.key] for column in title_key]))
        .group_by(*title_key)
        .having(or_(func.min(year) != func.max(year), func.min(formats) != func.max(formats)))
    )
    return union_all(*parts).subquery("dup_groups")


def _member_condition(groups: Sequence[DuplicateGroup]) -> ColumnElement[bool]:
    """One WHERE clause matching every item of the given groups."""
    by_kind: dict[str, list[tuple[str, ...]]] = {}
    for group in groups:
        by_kind.setdefault(group.kind, []).append(group.key)
    clauses: list[ColumnElement[bool]] = []
    for name in IDENTIFIER_COLUMNS:
        if name in by_kind:
            clauses.append(getattr(Media, name).in_([key[0] for key in by_kind[name]]))
    if "tmdb" in by_kind:
        clauses.append(tuple_(Media.tmdb_media_type, Media.tmdb_id).in_(
            [(key[0], int(key[1])) for key in by_kind["tmdb"]]))
    if "title" in by_kind:
        clauses.append(tuple_(Media.library_id, Media.media_type, Media.sort_title).in_(
            [(int(key[0]), key[1], key[2]) for key in by_kind["title"]]))
    return or_(*clauses)


def _group_key_of(media: Media, kind: str) -> tuple[str, ...] | None:
    if kind in IDENTIFIER_COLUMNS:
        value = getattr(media, kind)
        return (value,) if value is not None else None
    if kind == "tmdb":
        return (media.tmdb_media_type, str(media.tmdb_id)) if media.tmdb_id is not None else None
    return (str(media.library_id), media.media_type, media.sort_title)


def duplicates_page(actor: Actor, page: int = 1, per_page: int = PER_PAGE) -> DuplicatesPage:
    """One page of duplicate groups (identifier groups first, then titles), each with its items."""
    page = max(1, page)
    keys = _group_keys()
    rows = db.session.execute(
        select(keys.c.kind, keys.c.k1, keys.c.k2, keys.c.k3, func.count().over().label("total"))
        .order_by(keys.c.rank, keys.c.k3, keys.c.k1, keys.c.k2)
        .limit(per_page).offset((page - 1) * per_page)
    ).all()
    # The window count comes with the page's rows; only a page past the end needs its own count.
    total = rows[0].total if rows else db.session.scalar(select(func.count()).select_from(keys)) or 0
    groups = [DuplicateGroup(r.kind, tuple(k for k in (r.k1, r.k2, r.k3) if k is not None)) for r in rows]
    if groups:
        index = {(g.kind, g.key): g for g in groups}
        members = db.session.execute(
            select(Media, User.name).outerjoin(User, User.id == Media.added_by)
            .options(defer(Media.search_text), defer(Media.overview), defer(Media.notes))
            .where(_member_condition(groups)).order_by(Media.id)
        ).all()
        for media, owner in members:
            for kind in KINDS:
                group = index.get((kind, _group_key_of(media, kind)))
                if group is not None:
                    group.items.append(Candidate(media, owner, can_edit_media(actor, media)))
    return DuplicatesPage(groups, page, per_page, total)
