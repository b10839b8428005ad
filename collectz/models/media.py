"""The catalog: libraries, media items and what hangs off them."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from collectz.models.base import Base, TimestampMixin, index_of_set, utcnow
from collectz.models.media_types import MEDIA_TYPES, validate_type_details

_ARTICLE = re.compile(r"^(the|an|a)\s+", re.IGNORECASE)


def make_sort_title(title: str) -> str:
    """Lower-cased title without a leading A/An/The, for sorting and keyset paging."""
    stripped = _ARTICLE.sub("", title.strip())
    return (stripped or title.strip()).casefold()[:255]


class Library(Base):
    __tablename__ = "libraries"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    is_default: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


_TYPES_SQL = ", ".join(f"'{t}'" for t in MEDIA_TYPES)


class Media(TimestampMixin, Base):
    __tablename__ = "media"
    __table_args__ = (
        CheckConstraint(f"media_type IN ({_TYPES_SQL})", name="media_type"),
        CheckConstraint("copies >= 1", name="copies_positive"),
        CheckConstraint("signed_role IS NULL OR signed_role IN ('author', 'producer', 'cast')", name="signed_role"),
        Index("ix_media_browse", "library_id", "sort_title", "id"),
        Index("ix_media_type_browse", "library_id", "media_type", "sort_title", "id"),
        Index("ix_media_year", "library_id", "year", "id"),
        Index("ix_media_created", "library_id", "created_at", "id"),
        # Identifiers: looked up by value (imports, enrichment, duplicates); most items have only some of them.
        index_of_set("ix_media_isbn13", "isbn13"),
        index_of_set("ix_media_ean13", "ean13"),
        index_of_set("ix_media_asin", "asin"),
        index_of_set("ix_media_plex_guid", "plex_guid"),
        index_of_set("ix_media_tmdb", "tmdb_media_type", "tmdb_id"),
        # Browse filters and sorts (services/queries.py); id in each is the keyset tie-break.
        # ix_media_library: the foreign key's index; (library_id, id) probes make counts of id sets cheap.
        Index("ix_media_library", "library_id", "id"),
        # A section by year; the columns after id cover common combined filters without reading the table.
        Index("ix_media_type_year", "library_id", "media_type", "year", "id", "resolution", "rating"),
        Index("ix_media_rating", "library_id", "rating", "id"),
        Index("ix_media_formats", "library_id", "formats_key", "id"),
        # Filters by a value (never a sort): only the items that have one.
        index_of_set("ix_media_platform", "library_id", "platform", "id", column="platform"),
        index_of_set("ix_media_resolution", "library_id", "resolution", "id", column="resolution"),
        index_of_set("ix_media_location", "library_id", "location", "id", column="location"),
        index_of_set("ix_media_signed", "library_id", "signed_by", "id", column="signed_by"),
        # Indexes the models cannot describe (SQLite FTS5 table media_fts; PostgreSQL pg_trgm GIN indexes on
        # search_text, formats_key and people.name_key) are made by migration 0003; see services/indexing.py.
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    library_id: Mapped[int] = mapped_column(ForeignKey("libraries.id", ondelete="RESTRICT"))
    space_id: Mapped[int | None]
    media_type: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(500))
    sort_title: Mapped[str] = mapped_column(String(255))
    original_title: Mapped[str | None] = mapped_column(String(500))
    year: Mapped[int | None] = mapped_column(SmallInteger)
    release_date: Mapped[date | None]
    formats: Mapped[list[str]] = mapped_column(JSON, default=list)
    overview: Mapped[str | None] = mapped_column(Text)
    runtime: Mapped[int | None]
    rating: Mapped[float | None] = mapped_column(Numeric(4, 2, asdecimal=False))
    isbn13: Mapped[str | None] = mapped_column(String(13))
    ean13: Mapped[str | None] = mapped_column(String(13))
    asin: Mapped[str | None] = mapped_column(String(10))
    tmdb_id: Mapped[int | None]
    tmdb_media_type: Mapped[str | None] = mapped_column(String(8))
    plex_guid: Mapped[str | None] = mapped_column(String(255))
    type_details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    signed_by: Mapped[str | None] = mapped_column(String(255))
    signed_role: Mapped[str | None] = mapped_column(String(16))
    signed_on: Mapped[date | None]
    signed_at: Mapped[str | None] = mapped_column(String(255))
    signed_proof_key: Mapped[str | None] = mapped_column(String(255))
    location: Mapped[str | None] = mapped_column(String(255))
    notes: Mapped[str | None] = mapped_column(Text)
    copies: Mapped[int] = mapped_column(default=1)
    cover_key: Mapped[str | None] = mapped_column(String(255))
    # The cover made small for the library grid (services/covers.py; made by a job after each new cover).
    thumb_key: Mapped[str | None] = mapped_column(String(255))
    import_source: Mapped[str | None] = mapped_column(String(32))
    # Lower-cased text that search matches: title, original title, people, series, notes, identifiers.
    # Kept by services.indexing.refresh_media_index whenever an item or its people change.
    search_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Derived by refresh_media_index too, so that filters and sorts use plain indexed columns:
    # owned formats casefolded and tab-delimited ("\tblu-ray\tdvd\t"), a game's platform, and the best resolution
    # class (SD, 720p, 1080p, 4K) of the "resolution" detail and the item's variants.
    formats_key: Mapped[str | None] = mapped_column(String(255))
    platform: Mapped[str | None] = mapped_column(String(100))
    resolution: Mapped[str | None] = mapped_column(String(8))
    added_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)

    people: Mapped[list[MediaPerson]] = relationship(
        back_populates="media", cascade="all, delete-orphan", order_by="MediaPerson.position"
    )
    genres: Mapped[list[Genre]] = relationship(secondary="media_genres", order_by="Genre.name")
    seasons: Mapped[list[MediaSeason]] = relationship(
        back_populates="media", cascade="all, delete-orphan", order_by="MediaSeason.season_number"
    )

    @validates("title")
    def _set_title(self, _key: str, title: str) -> str:
        self.sort_title = make_sort_title(title)
        return title

    @validates("type_details")
    def _check_details(self, _key: str, details: dict[str, Any]) -> dict[str, Any]:
        return validate_type_details(self.media_type or "other", details)


class MediaUserState(Base):
    """Each member's own rating, status and watchlist flag on an item."""

    __tablename__ = "media_user_state"
    __table_args__ = (
        UniqueConstraint("media_id", "user_id"),
        CheckConstraint("rating IS NULL OR (rating >= 0 AND rating <= 10)", name="rating_range"),
        CheckConstraint(
            "status IS NULL OR status IN ('want', 'owned', 'in_progress', 'finished', 'dropped')", name="status"
        ),
        Index("ix_media_user_state_user_rating", "user_id", "rating", "media_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    rating: Mapped[int | None] = mapped_column(SmallInteger)
    status: Mapped[str | None] = mapped_column(String(16))
    watchlist: Mapped[bool] = mapped_column(default=False)
    last_watched_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Person(Base):
    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    name_key: Mapped[str] = mapped_column(String(255), unique=True)


class MediaPerson(Base):
    __tablename__ = "media_people"
    __table_args__ = (Index("ix_media_people_person_role", "person_id", "role", "media_id"),)

    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(32), primary_key=True)
    position: Mapped[int] = mapped_column(default=0)
    character: Mapped[str | None] = mapped_column(String(255))

    media: Mapped[Media] = relationship(back_populates="people")
    person: Mapped[Person] = relationship(lazy="joined")


class Genre(Base):
    __tablename__ = "genres"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    name_key: Mapped[str] = mapped_column(String(100), unique=True)


class MediaGenre(Base):
    __tablename__ = "media_genres"
    __table_args__ = (Index("ix_media_genres_genre", "genre_id", "media_id"),)

    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), primary_key=True)
    genre_id: Mapped[int] = mapped_column(ForeignKey("genres.id", ondelete="CASCADE"), primary_key=True)


class MediaMetadata(Base):
    """Provider ids and import provenance: one value per (item, key)."""

    __tablename__ = "media_metadata"
    __table_args__ = (UniqueConstraint("media_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(100))
    value: Mapped[str | None] = mapped_column(Text)


class MediaSource(Base):
    """Which import entry made or updated an item, so a re-import maps back to it."""

    __tablename__ = "media_sources"
    __table_args__ = (UniqueConstraint("source", "source_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(32))
    source_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MediaSeason(Base):
    __tablename__ = "media_seasons"
    __table_args__ = (UniqueConstraint("media_id", "season_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    season_number: Mapped[int]
    expected_episodes: Mapped[int | None]
    available_episodes: Mapped[int | None]
    complete: Mapped[bool] = mapped_column(default=False)
    watch_state: Mapped[str | None] = mapped_column(String(16))

    media: Mapped[Media] = relationship(back_populates="seasons")


class CoverDownload(Base):
    """A cover to fetch from an address (an import's or a provider's) into storage, tried again with backoff until
    it arrives or gives up. The row goes when the cover is stored or the item already has one (services/covers.py)."""

    __tablename__ = "cover_downloads"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'failed')", name="status"),
        Index("ix_cover_downloads_due", "status", "next_attempt_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"), unique=True)
    url: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # failed: gave up (last_error says why)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(300))
    next_attempt_at: Mapped[datetime | None]  # due from then (pending); a claimed row is pushed past its lease
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MediaVariant(Base):
    """An edition or file of an item (from Plex): resolution, codecs, edition, path."""

    __tablename__ = "media_variants"
    __table_args__ = (UniqueConstraint("media_id", "source", "source_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(String(32), default="manual")
    source_key: Mapped[str] = mapped_column(String(255))
    resolution: Mapped[str | None] = mapped_column(String(16))
    video_codec: Mapped[str | None] = mapped_column(String(32))
    audio_codec: Mapped[str | None] = mapped_column(String(32))
    container: Mapped[str | None] = mapped_column(String(16))
    edition: Mapped[str | None] = mapped_column(String(100))
    file_path: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    duration_ms: Mapped[int | None]
