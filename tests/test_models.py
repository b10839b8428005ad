"""The core data model's invariants, on every backend."""

from __future__ import annotations

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError

from collectz.extensions import db
from collectz.models import (
    Genre,
    Library,
    Media,
    MediaGenre,
    MediaMetadata,
    MediaPerson,
    MediaSeason,
    MediaSource,
    MediaUserState,
    Person,
    User,
)
from collectz.models.media import make_sort_title
from collectz.models.media_types import TypeDetailsError, validate_type_details


@pytest.mark.parametrize(
    "title, expected",
    [("The Matrix", "matrix"), ("A Bug's Life", "bug's life"), ("An Education", "education"),
     ("Theodore Rex", "theodore rex"), ("The", "the"), ("  the  Thing ", "thing"), ("Amélie", "amélie")],
)
def test_sort_title_strips_leading_articles(title, expected):
    assert make_sort_title(title) == expected


def test_type_details_are_validated_per_type():
    assert validate_type_details("book", {"pages": "320", "publisher": " Tor "}) == {"pages": 320, "publisher": "Tor"}
    assert validate_type_details("game", {"platform": "", "region": None}) == {}
    with pytest.raises(TypeDetailsError) as unknown:
        validate_type_details("movie", {"platform": "PS5"})
    assert unknown.value.field == "platform"
    with pytest.raises(TypeDetailsError) as not_int:
        validate_type_details("audio", {"track_count": "twelve"})
    assert not_int.value.message == "must be a whole number"
    with pytest.raises(TypeDetailsError):
        validate_type_details("book", {"pages": -3})
    with pytest.raises(TypeDetailsError):
        validate_type_details("vinyl", {})


def test_model_refuses_details_of_another_type(ctx):
    with pytest.raises(TypeDetailsError):
        Media(title="Halo", media_type="game", library_id=1, type_details={"isbn": "x"})
    media = Media(title="Halo", media_type="game", library_id=1, type_details={"platform": "Xbox"})
    assert media.sort_title == "halo" and media.type_details == {"platform": "Xbox"}


def _default_library_id() -> int:
    return db.session.scalar(select(Library.id).where(Library.is_default.is_(True)))


def _user(email="owner@example.org", role="user") -> User:
    user = User(email=email, name="Owner", role=role, password_hash="x")
    db.session.add(user)
    db.session.flush()
    return user


def _media(title="Alien", **kw) -> Media:
    media = Media(title=title, media_type=kw.pop("media_type", "movie"), library_id=_default_library_id(), **kw)
    db.session.add(media)
    db.session.flush()
    return media


def test_one_default_library_exists(ctx):
    assert db.session.scalar(select(func.count(Library.id)).where(Library.is_default.is_(True))) == 1


def test_metadata_key_is_unique_per_item(ctx):
    media = _media()
    db.session.add(MediaMetadata(media_id=media.id, key="tmdb.popularity", value="1"))
    db.session.flush()
    db.session.add(MediaMetadata(media_id=media.id, key="tmdb.popularity", value="2"))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_a_source_entry_maps_to_one_item(ctx):
    first, second = _media("One"), _media("Two")
    db.session.add(MediaSource(media_id=first.id, source="delicious", source_id="uuid-1"))
    db.session.flush()
    db.session.add(MediaSource(media_id=second.id, source="delicious", source_id="uuid-1"))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


@pytest.mark.parametrize("column, value", [("rating", 11), ("rating", -1), ("status", "lost")])
def test_user_state_checks(ctx, column, value):
    user, media = _user(), _media()
    db.session.add(MediaUserState(media_id=media.id, user_id=user.id, **{column: value}))
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


@pytest.mark.parametrize("column, value", [("media_type", "vinyl"), ("copies", 0), ("signed_role", "fan")])
def test_media_checks(ctx, column, value):
    media = Media(title="X", media_type="other", library_id=_default_library_id())
    setattr(media, column, value)  # the database constraint is the last line of defence
    db.session.add(media)
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()


def test_deleting_an_item_removes_what_hangs_off_it(ctx):
    user, media = _user(), _media("The Wire", media_type="tv_series")
    person = Person(name="David Simon", name_key="david simon")
    genre = Genre(name="Crime", name_key="crime")
    db.session.add_all([person, genre])
    db.session.flush()
    db.session.add_all([
        MediaPerson(media_id=media.id, person_id=person.id, role="writer"),
        MediaGenre(media_id=media.id, genre_id=genre.id),
        MediaSeason(media_id=media.id, season_number=1, expected_episodes=13, available_episodes=13, complete=True),
        MediaUserState(media_id=media.id, user_id=user.id, rating=10, status="finished"),
        MediaMetadata(media_id=media.id, key="tvdb_id", value="79126"),
    ])
    db.session.commit()
    media_id = media.id

    db.session.execute(Media.__table__.delete().where(Media.id == media_id))
    db.session.commit()

    for model in (MediaPerson, MediaGenre, MediaSeason, MediaUserState, MediaMetadata):
        assert db.session.scalar(select(func.count()).select_from(model).where(model.media_id == media_id)) == 0
    assert db.session.get(Person, person.id) is not None  # people and genres are shared, they stay


def test_deleting_a_member_keeps_their_items_as_a_former_members(ctx):
    user = _user()
    media = _media(added_by=user.id)
    db.session.commit()

    db.session.execute(User.__table__.delete().where(User.id == user.id))
    db.session.commit()
    db.session.expire_all()

    kept = db.session.get(Media, media.id)
    assert kept is not None and kept.added_by is None


def test_browse_indexes_exist(ctx):
    indexes = {ix["name"]: ix["column_names"] for ix in inspect(db.engine).get_indexes("media")}
    assert indexes["ix_media_browse"] == ["library_id", "sort_title", "id"]
    assert indexes["ix_media_type_browse"] == ["library_id", "media_type", "sort_title", "id"]
    for column in ("isbn13", "ean13", "asin", "plex_guid"):
        assert any(cols == [column] for cols in indexes.values()), column
