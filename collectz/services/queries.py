"""Every list query of the library lives here."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from collectz.extensions import db
from collectz.models import Media
from collectz.models.media_types import LIBRARY_SECTIONS


@dataclass
class Page:
    items: list[Media]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_prev(self) -> bool:
        return self.page > 1


def library_page(section: str, page: int = 1, per_page: int = 50) -> Page:
    """One page of a library section, in title order (articles ignored)."""
    types = LIBRARY_SECTIONS.get(section, LIBRARY_SECTIONS["all"])[1]
    stmt = select(Media)
    count = select(func.count(Media.id))
    if types:
        stmt = stmt.where(Media.media_type.in_(types))
        count = count.where(Media.media_type.in_(types))
    page = max(1, page)
    items = db.session.scalars(
        stmt.order_by(Media.sort_title, Media.id).limit(per_page).offset((page - 1) * per_page)
    ).all()
    return Page(list(items), page, per_page, db.session.scalar(count) or 0)
